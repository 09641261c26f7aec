-- Confab schema, version 1, for MySQL/MariaDB: the tables, keys and
-- indexes of ../0001_init.sql in this engine's grammar. Every table is
-- InnoDB with a binary collation: names, tokens and ids compare byte for
-- byte, as they do on SQLite and PostgreSQL. Foreign keys are table
-- clauses (MySQL ignores a REFERENCES written on a column).

CREATE TABLE id_counters (
    name VARCHAR(32) NOT NULL PRIMARY KEY,
    next_id BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
INSERT INTO id_counters (name, next_id) VALUES ('user', 1);
INSERT INTO id_counters (name, next_id) VALUES ('group', 1);

CREATE TABLE users (
    id BIGINT NOT NULL PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE UNIQUE INDEX users_name ON users (name);

CREATE TABLE sessions (
    token_hash VARCHAR(128) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    device VARCHAR(128) NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE friend_requests (
    from_user BIGINT NOT NULL,
    to_user BIGINT NOT NULL,
    note VARCHAR(512) NOT NULL,
    state SMALLINT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    PRIMARY KEY (from_user, to_user),
    FOREIGN KEY (from_user) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (to_user) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX friend_requests_to ON friend_requests (to_user, state);

CREATE TABLE friendships (
    user_id BIGINT NOT NULL,
    friend_id BIGINT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (friend_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE chat_groups (
    id BIGINT NOT NULL PRIMARY KEY,
    name VARCHAR(128) NOT NULL,
    owner_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (owner_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX chat_groups_owner ON chat_groups (owner_id);

CREATE TABLE group_members (
    group_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    role SMALLINT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id),
    FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE group_join_requests (
    group_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    note VARCHAR(512) NOT NULL,
    state SMALLINT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by BIGINT,
    PRIMARY KEY (group_id, user_id),
    FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX group_join_requests_state ON group_join_requests (group_id, state);

CREATE TABLE conversations (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    kind SMALLINT NOT NULL,
    user_lo BIGINT,
    user_hi BIGINT,
    group_id BIGINT,
    seq BIGINT NOT NULL,
    last_message_id BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX conversations_lo ON conversations (user_lo, updated_at);
CREATE INDEX conversations_hi ON conversations (user_hi, updated_at);
CREATE INDEX conversations_group ON conversations (group_id);

-- MEDIUMTEXT: a body may be longer than TEXT's 64 KiB in bytes.
CREATE TABLE messages (
    message_id BIGINT NOT NULL PRIMARY KEY,
    conversation_id VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    sender_id BIGINT NOT NULL,
    body MEDIUMTEXT NOT NULL,
    client_msg_id VARCHAR(64) NOT NULL,
    server_time BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE UNIQUE INDEX messages_conversation_seq ON messages (conversation_id, seq);

CREATE TABLE read_marks (
    user_id BIGINT NOT NULL,
    conversation_id VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

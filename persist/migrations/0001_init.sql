-- Confab schema, version 1. One text for SQLite and PostgreSQL (and, later,
-- MySQL/MariaDB): integer ids are BIGINT (u64 values below 2^63), times are
-- BIGINT milliseconds since the Unix epoch, states and roles are SMALLINT,
-- strings are VARCHAR with a bound (indexable everywhere) or TEXT.

-- Id allocation without engine-specific auto-increment: one row per kind,
-- incremented inside the inserting transaction.
CREATE TABLE id_counters (
    name VARCHAR(32) NOT NULL PRIMARY KEY,
    next_id BIGINT NOT NULL
);
INSERT INTO id_counters (name, next_id) VALUES ('user', 1);
INSERT INTO id_counters (name, next_id) VALUES ('group', 1);

CREATE TABLE users (
    id BIGINT NOT NULL PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_name ON users (name);

-- Devices and their session tokens (only a hash of the token is kept).
CREATE TABLE sessions (
    token_hash VARCHAR(128) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device VARCHAR(128) NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- state: 1 pending, 2 accepted, 3 declined.
CREATE TABLE friend_requests (
    from_user BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_user BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    note VARCHAR(512) NOT NULL,
    state SMALLINT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    PRIMARY KEY (from_user, to_user)
);
CREATE INDEX friend_requests_to ON friend_requests (to_user, state);

-- Two rows per friendship, one per direction.
CREATE TABLE friendships (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    since BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE chat_groups (
    id BIGINT NOT NULL PRIMARY KEY,
    name VARCHAR(128) NOT NULL,
    owner_id BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL
);
CREATE INDEX chat_groups_owner ON chat_groups (owner_id);

-- role: 1 member, 2 admin, 3 owner.
CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES chat_groups (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role SMALLINT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE group_join_requests (
    group_id BIGINT NOT NULL REFERENCES chat_groups (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    note VARCHAR(512) NOT NULL,
    state SMALLINT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by BIGINT,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_join_requests_state ON group_join_requests (group_id, state);

-- One row per conversation that has messages. kind: 1 direct (user_lo,
-- user_hi set), 2 group (group_id set). seq is the last assigned sequence.
CREATE TABLE conversations (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    kind SMALLINT NOT NULL,
    user_lo BIGINT,
    user_hi BIGINT,
    group_id BIGINT,
    seq BIGINT NOT NULL,
    last_message_id BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX conversations_lo ON conversations (user_lo, updated_at);
CREATE INDEX conversations_hi ON conversations (user_hi, updated_at);
CREATE INDEX conversations_group ON conversations (group_id);

-- No foreign keys here: the writer's hot path; gateways validate senders.
CREATE TABLE messages (
    message_id BIGINT NOT NULL PRIMARY KEY,
    conversation_id VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    sender_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    client_msg_id VARCHAR(64) NOT NULL,
    server_time BIGINT NOT NULL
);
-- History pages (seq < n, newest first) and sync (seq > n).
CREATE UNIQUE INDEX messages_conversation_seq ON messages (conversation_id, seq);

-- What each user has read, per conversation.
CREATE TABLE read_marks (
    user_id BIGINT NOT NULL,
    conversation_id VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);

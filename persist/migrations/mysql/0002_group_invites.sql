-- Confab schema, version 2, for MySQL/MariaDB (see ../0002_group_invites.sql).
CREATE TABLE group_invites (
    group_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    invited_by BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id),
    FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (invited_by) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX group_invites_user ON group_invites (user_id, created_at);
CREATE INDEX group_invites_by ON group_invites (invited_by);

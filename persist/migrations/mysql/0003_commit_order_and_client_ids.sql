-- Confab schema, version 3, for MySQL/MariaDB (see
-- ../0003_commit_order_and_client_ids.sql): the commit-order counter, and
-- the sender's client message id as an idempotency key. MySQL has no
-- partial index: the key is a generated column, NULL for an empty id, and
-- a unique index admits any number of NULLs. (No MySQL database predates
-- this version with repeated keys, so nothing is deduplicated here.)
ALTER TABLE conversations ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
INSERT INTO id_counters (name, next_id) VALUES ('change', 1);
CREATE INDEX conversations_lo_change ON conversations (user_lo, change_seq);
CREATE INDEX conversations_hi_change ON conversations (user_hi, change_seq);

ALTER TABLE messages ADD COLUMN client_key VARCHAR(64)
    GENERATED ALWAYS AS (NULLIF(client_msg_id, '')) STORED;
CREATE UNIQUE INDEX messages_client_id ON messages (sender_id, client_key);

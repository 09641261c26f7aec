-- Confab schema, version 4, for MySQL/MariaDB (see
-- ../0004_reads_and_recalls.sql). A unique index admits any number of
-- NULLs, so recall_of needs no partial index.
ALTER TABLE read_marks ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX read_marks_conversation ON read_marks (conversation_id, user_id);

ALTER TABLE messages ADD COLUMN recalled_at BIGINT;
ALTER TABLE messages ADD COLUMN recall_of BIGINT;
CREATE UNIQUE INDEX messages_recall_of ON messages (recall_of);

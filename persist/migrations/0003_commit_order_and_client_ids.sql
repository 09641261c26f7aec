-- Confab schema, version 3.
--
-- Sync by commit order, not by clock: every writer transaction takes the
-- next value of the 'change' counter as its last statement (the counter's
-- row lock is held until the commit, so values commit in increasing order)
-- and stamps the conversations it moved with it. A reader that read the
-- counter's committed value C has seen every transaction stamped <= C.
ALTER TABLE conversations ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
INSERT INTO id_counters (name, next_id) VALUES ('change', 1);
CREATE INDEX conversations_lo_change ON conversations (user_lo, change_seq);
CREATE INDEX conversations_hi_change ON conversations (user_hi, change_seq);

-- A sender's own id for a message is an idempotency key: a resend with the
-- same client_msg_id is the same message. Older rows that repeat a pair
-- keep their text but lose the key (the oldest keeps it).
CREATE INDEX messages_client_tmp ON messages (sender_id, client_msg_id);
UPDATE messages SET client_msg_id = '' WHERE client_msg_id <> '' AND EXISTS (
    SELECT 1 FROM messages older
    WHERE older.sender_id = messages.sender_id
      AND older.client_msg_id = messages.client_msg_id
      AND older.message_id < messages.message_id);
DROP INDEX messages_client_tmp;
CREATE UNIQUE INDEX messages_client_id ON messages (sender_id, client_msg_id) WHERE client_msg_id <> '';

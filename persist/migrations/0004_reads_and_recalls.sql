-- Confab schema, version 4: read marks that sync sees, and recalls.
--
-- A read mark that moves takes the next value of the 'change' counter, as
-- a writer's commit does: the next sync of the reader (and, for a direct
-- conversation, of the other user, who sees it as peer_read_seq) lists the
-- conversation again.
ALTER TABLE read_marks ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX read_marks_conversation ON read_marks (conversation_id, user_id);

-- A recalled message keeps its row and sequence, with its body emptied and
-- the time of the recall in recalled_at (NULL: not recalled). The recall
-- itself is an entry of the conversation with the next sequence, no body,
-- the recaller as sender and recall_of naming the message: devices that
-- were offline find it by sync like a message. One entry per message.
ALTER TABLE messages ADD COLUMN recalled_at BIGINT;
ALTER TABLE messages ADD COLUMN recall_of BIGINT;
CREATE UNIQUE INDEX messages_recall_of ON messages (recall_of) WHERE recall_of IS NOT NULL;

-- Confab schema, version 2: an invitation to a group is pending until the
-- invitee accepts or declines it (an answered one is deleted). Deleting the
-- group, the invitee or the inviter deletes it.
CREATE TABLE group_invites (
    group_id BIGINT NOT NULL REFERENCES chat_groups (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
-- The invitee's list, and the count of an inviter's pending invites.
CREATE INDEX group_invites_user ON group_invites (user_id, created_at);
CREATE INDEX group_invites_by ON group_invites (invited_by);

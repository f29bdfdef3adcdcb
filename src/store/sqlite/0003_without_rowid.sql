-- Key-only tables as WITHOUT ROWID: one b-tree per row instead of a rowid
-- table plus its primary-key index, so a message's status update (written
-- with almost every delivery report) touches half the pages.
CREATE TABLE messages_v3 (
    source      TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    rank        INTEGER NOT NULL,
    event_id    TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (source, message_id)
) WITHOUT ROWID;
INSERT INTO messages_v3 SELECT source, message_id, status, rank, event_id, updated_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v3 RENAME TO messages;

CREATE TABLE optouts_v3 (
    number      TEXT PRIMARY KEY,
    opted_out   INTEGER NOT NULL,
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    changed_at  TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO optouts_v3 SELECT number, opted_out, source, event_id, changed_at FROM optouts;
DROP TABLE optouts;
ALTER TABLE optouts_v3 RENAME TO optouts;

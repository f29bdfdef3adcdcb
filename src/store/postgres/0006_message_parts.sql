-- The parts of long inbound messages: each part that arrives looks for the
-- others by the start of their dedupe key (`crate::join`), a range compared
-- byte by byte whatever the database's collation (under en_US, say, `|`
-- would be all but ignored). Partial: no other event is in it.
CREATE INDEX events_parts ON events (source, (dedupe_key COLLATE "C")) WHERE type = 'message.part';

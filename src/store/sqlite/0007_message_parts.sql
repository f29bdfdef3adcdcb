-- The parts of long inbound messages, by source and sender: each part that
-- arrives looks for the others to join them (`crate::join`). Partial, so it
-- costs nothing for every other event.
CREATE INDEX events_parts ON events (source, from_number) WHERE type = 'message.part';

-- Message statuses keyed (message_id, source) instead of (source, message_id):
-- a status lookup names the message and only sometimes the source, and the
-- old key could serve it only by reading the whole index.
ALTER TABLE messages DROP CONSTRAINT messages_pkey, ADD PRIMARY KEY (message_id, source);

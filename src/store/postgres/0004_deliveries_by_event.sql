-- Deliveries by event: retention checks each old event for a pending
-- delivery, and deletes an event's deliveries with it.
CREATE INDEX deliveries_event ON deliveries (event_id);

-- Why a request was refused, in words: the `message` of the answer the
-- provider got (which header was missing, where the JSON broke). NULL for
-- accepted requests.
ALTER TABLE requests ADD COLUMN message TEXT;

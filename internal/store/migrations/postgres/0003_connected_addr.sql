-- The connection behind a client's connected time, so that the disconnect
-- of an older connection (a punted tab, a report that arrives late) does not
-- clear the time a newer login set; and the place a directory login holds
-- in its channel until the login report arrives (-max-clients-per-channel).
ALTER TABLE clients ADD COLUMN connected_addr TEXT;
ALTER TABLE clients ADD COLUMN login_reserved BIGINT;

-- Moderation (issue 19): removals, the lock, and what they are checked by.
--
-- clients.origin is the address prefix the channel page created the client
-- from (IPv4 /32, IPv6 /64, behind trusted proxies the forwarded one; ''
-- for clients from before this migration). A removal copies it, so that a
-- new visitor from the removed person's network is refused a fresh client.
-- clients.admitted is the lock time (channels.locked) the client was
-- admitted for: present at the lock, or a manager's; a later lock has
-- another time, so nothing needs clearing on unlock.
ALTER TABLE clients ADD COLUMN origin TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN admitted INTEGER;
-- channels.locked is when the channel was locked (NULL: not locked).
-- channels.removals_until is the latest until of the channel's removals
-- (NULL: never any): a channel whose removals_until has passed has no
-- active removal, so pages and logins need not look at channel_removals.
ALTER TABLE channels ADD COLUMN locked INTEGER;
ALTER TABLE channels ADD COLUMN removals_until INTEGER;
-- A removal keeps a client of a channel out until the given time. The
-- client id is no foreign key: the sweeper may delete the client and its
-- browser's session put it back with the same id, still removed.
CREATE TABLE channel_removals (
	channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
	client_id TEXT NOT NULL,
	until INTEGER NOT NULL,
	removed_by INTEGER REFERENCES users (id) ON DELETE SET NULL,
	created INTEGER NOT NULL,
	origin TEXT NOT NULL,
	PRIMARY KEY (channel_id, client_id)
);
CREATE INDEX channel_removals_until ON channel_removals (until);

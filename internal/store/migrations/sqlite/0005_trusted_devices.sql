-- A trusted device is a browser that signed in to an account: its
-- long-lived device cookie exempts it from the sign-in limits that
-- strangers' failures spend (see internal/web/signin.go). Only the
-- SHA-256 of the cookie's token is kept, so a copy of the database does
-- not give working cookies. expires is Unix microseconds.
CREATE TABLE trusted_devices (
	token_hash BLOB PRIMARY KEY,
	user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	expires INTEGER NOT NULL
);
CREATE INDEX trusted_devices_user ON trusted_devices (user_id, expires);
CREATE INDEX trusted_devices_expires ON trusted_devices (expires);

-- Times are Unix microseconds (UTC) in INTEGER columns, so the same queries
-- and Go code serve SQLite and PostgreSQL alike.
CREATE TABLE users (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	admin INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL
);

CREATE TABLE channels (
	id TEXT PRIMARY KEY,
	topic TEXT NOT NULL,
	public INTEGER NOT NULL,
	owner_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
	created INTEGER NOT NULL
);
CREATE INDEX channels_public_created ON channels (public, created);

CREATE TABLE clients (
	id TEXT PRIMARY KEY,
	password TEXT NOT NULL,
	channel_id TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
	created INTEGER NOT NULL,
	connected INTEGER
);
CREATE INDEX clients_channel ON clients (channel_id);

CREATE TABLE sessions (
	token TEXT PRIMARY KEY,
	data BLOB NOT NULL,
	expiry INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expiry);

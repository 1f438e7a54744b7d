-- One-time actions of the whole deployment (such as creating the first
-- channel), claimed by whichever process gets here first.
CREATE TABLE claims (
	name TEXT PRIMARY KEY,
	claimed BIGINT NOT NULL
);

-- last_login is when the client last logged in to the signalling server
-- (NULL: never, as far as this database knows). The sweeper deletes
-- clients that never logged in once their grace period is over. Triggers
-- keep it, so every writer of connected (the login report, imports) keeps
-- it without knowing of it. Clients from before this migration keep NULL;
-- the sweeper leaves them alone (their sessions do not hold the password
-- needed to re-create them).
ALTER TABLE clients ADD COLUMN last_login INTEGER;
UPDATE clients SET last_login = connected WHERE connected IS NOT NULL;
CREATE TRIGGER clients_login_update AFTER UPDATE OF connected ON clients
FOR EACH ROW WHEN NEW.connected IS NOT NULL
BEGIN
	UPDATE clients SET last_login = NEW.connected WHERE id = NEW.id;
END;
CREATE TRIGGER clients_login_insert AFTER INSERT ON clients
FOR EACH ROW WHEN NEW.connected IS NOT NULL
BEGIN
	UPDATE clients SET last_login = NEW.connected WHERE id = NEW.id;
END;
CREATE INDEX clients_never_logged_in ON clients (created) WHERE last_login IS NULL;
CREATE INDEX clients_last_login ON clients (last_login);

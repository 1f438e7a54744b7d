-- last_login is when the client last logged in to the signalling server
-- (NULL: never, as far as this database knows); the login report and
-- imports write it with connected. The sweeper deletes clients that never
-- logged in once their grace period is over. Clients from before this
-- migration keep NULL unless connected; the sweeper leaves them alone
-- (their sessions do not hold the password needed to re-create them).
ALTER TABLE clients ADD COLUMN last_login INTEGER;
UPDATE clients SET last_login = connected WHERE connected IS NOT NULL;
CREATE INDEX clients_never_logged_in ON clients (created) WHERE last_login IS NULL;
CREATE INDEX clients_last_login ON clients (last_login);

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Client is one browser's identity in one channel: its Verto login name and
// peer id, and the password it logs in with.
type Client struct {
	ID        string
	Password  string
	ChannelID string
	Created   time.Time
	// Connected is when the signalling server last reported a login; the
	// zero time while the client is disconnected.
	Connected time.Time
	// LastLogin is when the client last logged in, connected or not; the
	// zero time if it never did (as far as this database knows).
	LastLogin time.Time
	// Origin is the address prefix the channel page created the client
	// from (forwarded.LimitKey: an IPv4 address or an IPv6 /64); "" for
	// clients from before it was kept, and for those made otherwise.
	Origin string
	// Admitted is the lock time (Channel.Locked) the client was admitted
	// for: present at the lock, or a manager's (moderation.go).
	Admitted time.Time
}

// AdmittedTo reports whether the client was admitted to a channel locked
// at the given time.
func (c Client) AdmittedTo(locked time.Time) bool {
	return !locked.IsZero() && c.Admitted.Equal(locked)
}

// CreateClient adds a client to a channel with a new random id and
// password (UUIDv4s from crypto/rand).
func (s *Store) CreateClient(ctx context.Context, channelID string) (Client, error) {
	return s.CreateClientFrom(ctx, channelID, "")
}

// CreateClientFrom is CreateClient for a client whose page was asked for
// from the address prefix origin (Client.Origin).
func (s *Store) CreateClientFrom(ctx context.Context, channelID, origin string) (Client, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return Client{}, fmt.Errorf("create client: %w", err)
	}
	pw, err := uuid.NewRandom()
	if err != nil {
		return Client{}, fmt.Errorf("create client: %w", err)
	}
	c := Client{ID: id.String(), Password: pw.String(), ChannelID: channelID, Created: fromMicros(micros(s.now())), Origin: origin}
	if err := s.PutClient(ctx, c); err != nil {
		return Client{}, err
	}
	return c, nil
}

// PutClient inserts a client with the given id and password, for imports
// and tests that replay recorded traffic. The channel must exist.
func (s *Store) PutClient(ctx context.Context, c Client) error {
	if c.Created.IsZero() {
		c.Created = s.now()
	}
	var connected sql.NullInt64
	if !c.Connected.IsZero() {
		connected = sql.NullInt64{Int64: micros(c.Connected), Valid: true}
	}
	_, err := s.exec(ctx,
		`INSERT INTO clients (id, password, channel_id, created, connected, last_login, origin) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Password, c.ChannelID, micros(c.Created), connected, connected, c.Origin)
	if isUniqueViolation(err) {
		return fmt.Errorf("put client %s: %w", c.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("put client %s: %w", c.ID, err)
	}
	return nil
}

// ClientByID looks a client up by id.
func (s *Store) ClientByID(ctx context.Context, id string) (Client, error) {
	var c Client
	var created int64
	var connected, lastLogin, admitted sql.NullInt64
	err := s.queryRow(ctx,
		`SELECT id, password, channel_id, created, connected, last_login, origin, admitted FROM clients WHERE id = ?`, id).
		Scan(&c.ID, &c.Password, &c.ChannelID, &created, &connected, &lastLogin, &c.Origin, &admitted)
	if err != nil {
		return Client{}, notFound(err, "client "+id)
	}
	c.Created = fromMicros(created)
	c.LastLogin = nullTime(lastLogin)
	c.Admitted = nullTime(admitted)
	if connected.Valid {
		c.Connected = fromMicros(connected.Int64)
	}
	return c, nil
}

// SetClientConnected records that the client logged in to the signalling
// server at the given time, from a connection whose address is unknown.
func (s *Store) SetClientConnected(ctx context.Context, id string, at time.Time) error {
	return s.ClientLoggedIn(ctx, id, "", at)
}

// ClientLoggedIn records that the client logged in to the signalling server
// at the given time over the connection from addr (mod_verto's
// verto_client_address, "ip:port"; "" when the reporter does not say). It
// replaces the address of any earlier login and frees the place
// ReserveLogin held.
func (s *Store) ClientLoggedIn(ctx context.Context, id, addr string, at time.Time) error {
	var a sql.NullString
	if addr != "" {
		a = sql.NullString{String: addr, Valid: true}
	}
	return s.execOne(ctx, "set client connected "+id,
		`UPDATE clients SET connected = ?, last_login = ?, connected_addr = ?, login_reserved = NULL WHERE id = ?`, micros(at), micros(at), a, id)
}

// ClearClientConnected records that the client disconnected, whichever
// connection it was on.
func (s *Store) ClearClientConnected(ctx context.Context, id string) error {
	_, err := s.ClientDisconnected(ctx, id, "")
	return err
}

// ClientDisconnected records that the client's connection from addr
// closed, and reports whether that marked the client disconnected. Only the
// connection of the latest login counts: the close of an older one (a tab
// the newer login punted, a report that arrives after the next login's)
// changes nothing. An empty addr, or a login recorded without an address,
// cannot be told apart and clears as before. The check and the clear are
// one statement, so a login report running at the same time is either
// before it or after it, never lost.
func (s *Store) ClientDisconnected(ctx context.Context, id, addr string) (bool, error) {
	what := "clear client connected " + id
	if addr == "" {
		return true, s.execOne(ctx, what,
			`UPDATE clients SET connected = NULL, connected_addr = NULL WHERE id = ?`, id)
	}
	res, err := s.exec(ctx,
		`UPDATE clients SET connected = NULL, connected_addr = NULL
		 WHERE id = ? AND (connected_addr IS NULL OR connected_addr = ?)`, id, addr)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	if n > 0 {
		return true, nil
	}
	// A stale report, or an unknown client: only the latter is an error.
	var one int
	if err := s.queryRow(ctx, `SELECT 1 FROM clients WHERE id = ?`, id).Scan(&one); err != nil {
		return false, notFound(err, what)
	}
	return false, nil
}

// ReserveLogin decides the directory login of a client that is not
// connected in a channel limited to limit connected clients. When fewer
// than limit other clients of the channel are connected or hold a place, it
// holds one for the client until the given time (or until its login report
// arrives) and reports true; otherwise it reports false. n is the count it
// decided on. Concurrent calls for one channel are serialised (a row lock
// on the channel on PostgreSQL, the single writer on SQLite), so they
// cannot all see the same free place.
func (s *Store) ReserveLogin(ctx context.Context, clientID, channelID string, limit int, now, until time.Time) (n int, ok bool, err error) {
	what := "reserve login of " + clientID
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	if s.dialect == Postgres {
		var id string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM channels WHERE id = ? FOR UPDATE`), channelID).Scan(&id); err != nil {
			return 0, false, notFound(err, what)
		}
	}
	err = tx.QueryRowContext(ctx, s.q(
		`SELECT COUNT(*) FROM clients WHERE channel_id = ? AND id <> ?
		 AND (connected IS NOT NULL OR login_reserved > ?)`), channelID, clientID, micros(now)).Scan(&n)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", what, err)
	}
	if n >= limit {
		return n, false, nil
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE clients SET login_reserved = ? WHERE id = ?`), micros(until), clientID)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", what, err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return 0, false, fmt.Errorf("%s: %w", what, err)
	} else if k == 0 {
		return 0, false, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("%s: %w", what, err)
	}
	return n, true, nil
}

// ReleaseLogin frees the place ReserveLogin held for a client whose login
// failed.
func (s *Store) ReleaseLogin(ctx context.Context, id string) error {
	return s.execOne(ctx, "release login of "+id,
		`UPDATE clients SET login_reserved = NULL WHERE id = ?`, id)
}

// CountConnectedClients returns how many of a channel's clients are
// connected.
func (s *Store) CountConnectedClients(ctx context.Context, channelID string) (int, error) {
	var n int
	err := s.queryRow(ctx,
		`SELECT COUNT(*) FROM clients WHERE channel_id = ? AND connected IS NOT NULL`, channelID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count connected clients of %s: %w", channelID, err)
	}
	return n, nil
}

// CountClients returns the number of clients stored, in every channel,
// connected or not: what -max-stored-clients bounds. The web app reads it
// at most once a minute (one scan of the clients table's primary key).
func (s *Store) CountClients(ctx context.Context) (int64, error) {
	var n int64
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM clients`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count clients: %w", err)
	}
	return n, nil
}

// ConnectedClients returns the ids of up to limit connected clients of a
// channel other than except, the most recently connected first (those most
// likely to be still there when a report was lost), for the FreeSWITCH
// pack's leave notices.
func (s *Store) ConnectedClients(ctx context.Context, channelID, except string, limit int) ([]string, error) {
	what := "connected clients of " + channelID
	rows, err := s.query(ctx,
		`SELECT id FROM clients WHERE channel_id = ? AND connected IS NOT NULL AND id <> ?
		 ORDER BY connected DESC, id LIMIT ?`, channelID, except, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return ids, nil
}

// ClientInChannel returns a client together with its channel in one query,
// for the channel page of a returning browser; ErrNotFound unless the
// client exists and belongs to that channel. RecentChannel answers with
// the channel for a while after.
func (s *Store) ClientInChannel(ctx context.Context, clientID, channelID string) (Channel, Client, error) {
	var ch Channel
	var c Client
	var owner, locked, removals, connected, lastLogin, admitted sql.NullInt64
	var chCreated, cCreated int64
	gen := s.recent.generation(channelID)
	err := s.queryRow(ctx,
		`SELECT ch.id, ch.topic, ch.public, ch.owner_id, ch.created, ch.locked, ch.removals_until,
		   c.id, c.password, c.created, c.connected, c.last_login, c.origin, c.admitted
		 FROM clients c JOIN channels ch ON ch.id = c.channel_id
		 WHERE c.id = ? AND c.channel_id = ?`, clientID, channelID).
		Scan(&ch.ID, &ch.Topic, &ch.Public, &owner, &chCreated, &locked, &removals,
			&c.ID, &c.Password, &cCreated, &connected, &lastLogin, &c.Origin, &admitted)
	if err != nil {
		return Channel{}, Client{}, notFound(err, "client "+clientID+" in channel "+channelID)
	}
	ch.OwnerID = owner.Int64
	ch.Created = fromMicros(chCreated)
	ch.Locked = nullTime(locked)
	ch.RemovalsUntil = nullTime(removals)
	c.Admitted = nullTime(admitted)
	c.ChannelID = ch.ID
	c.Created = fromMicros(cCreated)
	if connected.Valid {
		c.Connected = fromMicros(connected.Int64)
	}
	if lastLogin.Valid {
		c.LastLogin = fromMicros(lastLogin.Int64)
	}
	s.afterRead(channelID)
	s.recent.put(ch, s.now(), gen)
	return ch, c, nil
}

// ClearConnectedExcept marks disconnected every client marked connected
// before the given time whose id present does not know, and returns how
// many it marked. A cluster's leader calls it with every user the cluster
// holds: a process that died left its clients marked connected, and its
// disconnect reports never come. A client that logs in again meanwhile
// keeps its new connected time (each row is cleared only if unchanged).
func (s *Store) ClearConnectedExcept(ctx context.Context, present func(id string) bool, before time.Time) (int64, error) {
	const what = "clear connected clients nobody holds"
	rows, err := s.query(ctx, `SELECT id, connected FROM clients WHERE connected IS NOT NULL AND connected < ? ORDER BY id`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	var gone []connectedRow
	for rows.Next() {
		var c connectedRow
		if err := rows.Scan(&c.id, &c.at); err != nil {
			rows.Close()
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		if !present(c.id) {
			gone = append(gone, c)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	// In transactions of sweepBatch rows: a crash of a whole cluster may
	// leave many, and a commit per row is slow on SQLite. In id order, as
	// the hub's report batches write theirs: two writers of several rows
	// that lock them in one order cannot deadlock.
	var n int64
	for len(gone) > 0 {
		batch := gone[:min(len(gone), sweepBatch)]
		gone = gone[len(batch):]
		k, err := s.clearConnected(ctx, batch)
		n += k
		if err != nil {
			return n, fmt.Errorf("%s: %w", what, err)
		}
	}
	return n, nil
}

// connectedRow is a client's id and the connected time it was read with.
type connectedRow struct {
	id string
	at int64
}

// clearConnected clears, in one transaction, the connected time of each
// client still connected at the time it was read with, and returns how
// many it cleared.
func (s *Store) clearConnected(ctx context.Context, batch []connectedRow) (int64, error) {
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, s.q(`UPDATE clients SET connected = NULL, connected_addr = NULL WHERE id = ? AND connected = ?`))
	if err != nil {
		return 0, err
	}
	defer st.Close()
	var n int64
	for _, c := range batch {
		res, err := st.ExecContext(ctx, c.id, c.at)
		if err != nil {
			return 0, err
		}
		k, _ := res.RowsAffected()
		n += k
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return n, nil
}

// ClearAllConnected marks every client disconnected and returns how many
// were marked connected. The embedded hub calls it at start-up: no client
// can be connected to a hub that has just started, and a process that died
// without a graceful shutdown left its clients marked connected.
func (s *Store) ClearAllConnected(ctx context.Context) (int64, error) {
	res, err := s.exec(ctx, `UPDATE clients SET connected = NULL, connected_addr = NULL, login_reserved = NULL
		 WHERE connected IS NOT NULL OR login_reserved IS NOT NULL`)
	if err != nil {
		return 0, fmt.Errorf("clear connected clients: %w", err)
	}
	return res.RowsAffected()
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Moderation: a channel's managers may remove a client for a while, and
// lock the channel so that nobody new joins.
//
// A removal keeps one client id out of one channel until a time, and
// remembers the address prefix the client was created from (its origin),
// so that the web app can refuse a new client to a visitor from there.
//
// A lock admits the clients "present at the lock" — connected when it was
// locked, or logged in within LockPresence before — by stamping them with
// the lock time (Client.Admitted); a manager's page view stamps the
// manager's client too (Admit). Everyone else is kept out until the
// unlock. A later lock has another time, so an unlock clears nothing.

// MaxActiveRemovals bounds the active removals of one channel: a
// misbehaving owner cannot make the state every login and page view reads
// grow without bound.
const MaxActiveRemovals = 1000

// LockPresence is how long before a lock a client's last login makes it
// present at the lock (a page reloading, a phone between networks).
const LockPresence = 10 * time.Minute

// ModerationAge is how long Moderation answers from what this process last
// read: a removal or lock made by another process shows within it. This
// process's own changes show at once.
const ModerationAge = time.Second

// ErrTooManyRemovals is returned by Remove when the channel already has
// MaxActiveRemovals active removals.
var ErrTooManyRemovals = errors.New("too many active removals")

// Removal keeps a client out of a channel until a time.
type Removal struct {
	ClientID string
	Until    time.Time
	By       int64 // the user who removed it; 0: unknown or deleted
	Created  time.Time
	// Origin is the removed client's Client.Origin.
	Origin string
}

// Moderation is a channel's moderation state.
type Moderation struct {
	// Locked is when the channel was locked; the zero time while not.
	Locked time.Time
	// Removed holds the active removals by client id (nil: none).
	Removed map[string]Removal
}

// Removal returns the active removal of client id, if any.
func (m Moderation) Removal(id string) (Removal, bool) {
	r, ok := m.Removed[id]
	return r, ok
}

// RemovalFrom returns an active removal whose client came from origin,
// the one that lasts longest; none for an empty origin (clients from
// before origins were kept).
func (m Moderation) RemovalFrom(origin string) (Removal, bool) {
	var found Removal
	if origin == "" {
		return found, false
	}
	for _, r := range m.Removed {
		if r.Origin == origin && r.Until.After(found.Until) {
			found = r
		}
	}
	return found, found.ClientID != ""
}

// RemovedIDs returns the removed client ids, sorted.
func (m Moderation) RemovedIDs() []string {
	ids := make([]string, 0, len(m.Removed))
	for id := range m.Removed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Refusal is why moderation keeps a client out: "" (it does not),
// RefusedRemoved or RefusedLocked.
func (m Moderation) Refusal(c Client) string {
	if _, ok := m.Removed[c.ID]; ok {
		return RefusedRemoved
	}
	if !m.Locked.IsZero() && !c.AdmittedTo(m.Locked) {
		return RefusedLocked
	}
	return ""
}

// Why moderation refuses a client (Moderation.Refusal).
const (
	RefusedRemoved = "removed"
	RefusedLocked  = "locked"
)

// Remove keeps client clientID of channelID out until until, removed by
// user by (0: nobody in particular), and returns the removal. Removing an
// already removed client replaces its removal. ErrNotFound when the
// client is not in that channel; ErrTooManyRemovals when the channel
// holds MaxActiveRemovals others. Concurrent removals in one channel are
// serialised (a row lock on the channel on PostgreSQL, the one writer on
// SQLite), so they cannot pass the cap together.
func (s *Store) Remove(ctx context.Context, channelID, clientID string, by int64, until time.Time) (Removal, error) {
	what := "remove client " + clientID + " from channel " + channelID
	now := s.now()
	r := Removal{ClientID: clientID, Until: fromMicros(micros(until)), By: by, Created: fromMicros(micros(now))}
	tx, err := s.begin(ctx)
	if err != nil {
		return Removal{}, fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	if err := s.lockChannel(ctx, tx, channelID); err != nil {
		return Removal{}, notFound(err, what)
	}
	err = tx.QueryRowContext(ctx, s.q(`SELECT origin FROM clients WHERE id = ? AND channel_id = ?`), clientID, channelID).Scan(&r.Origin)
	if err != nil {
		return Removal{}, notFound(err, what)
	}
	var n int
	err = tx.QueryRowContext(ctx, s.q(
		`SELECT COUNT(*) FROM channel_removals WHERE channel_id = ? AND until > ? AND client_id <> ?`),
		channelID, micros(now), clientID).Scan(&n)
	if err != nil {
		return Removal{}, fmt.Errorf("%s: %w", what, err)
	}
	if n >= MaxActiveRemovals {
		return Removal{}, fmt.Errorf("%s: %d active: %w", what, n, ErrTooManyRemovals)
	}
	_, err = tx.ExecContext(ctx, s.q(
		`INSERT INTO channel_removals (channel_id, client_id, until, removed_by, created, origin) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT (channel_id, client_id) DO UPDATE SET
		   until = excluded.until, removed_by = excluded.removed_by, created = excluded.created, origin = excluded.origin`),
		channelID, clientID, micros(r.Until), nullID(by), micros(r.Created), r.Origin)
	if err != nil {
		return Removal{}, fmt.Errorf("%s: %w", what, err)
	}
	_, err = tx.ExecContext(ctx, s.q(
		`UPDATE channels SET removals_until = ? WHERE id = ? AND (removals_until IS NULL OR removals_until < ?)`),
		micros(r.Until), channelID, micros(r.Until))
	if err != nil {
		return Removal{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return Removal{}, fmt.Errorf("%s: %w", what, err)
	}
	s.forgetChannel(channelID)
	return r, nil
}

// lockChannel makes sure the channel exists and, on PostgreSQL, holds its
// row until the transaction ends; SQLite's transactions hold the whole
// database already (_txlock=immediate). sql.ErrNoRows for an unknown
// channel.
func (s *Store) lockChannel(ctx context.Context, tx *sql.Tx, channelID string) error {
	query := `SELECT id FROM channels WHERE id = ?`
	if s.dialect == Postgres {
		query += ` FOR UPDATE`
	}
	var id string
	return tx.QueryRowContext(ctx, s.q(query), channelID).Scan(&id)
}

// lockClientsInOrder takes, on PostgreSQL, the row locks of the clients
// Lock writes, in id order, before it writes them. The hub's report
// batches lock the clients they write in id order too (and the sweep of
// connected clients), so neither can hold a row the other waits for
// while waiting for one the other holds: an UPDATE … WHERE channel_id
// alone locks its rows in the order it finds them, and could deadlock
// with a batch. SQLite has one writer at a time: nothing to order.
func (s *Store) lockClientsInOrder(ctx context.Context, tx *sql.Tx, channelID string, since int64, admit string) error {
	if s.dialect != Postgres {
		return nil
	}
	rows, err := tx.QueryContext(ctx, s.q(
		`SELECT id FROM clients
		 WHERE channel_id = ? AND (connected IS NOT NULL OR last_login >= ? OR id = ?)
		 ORDER BY id FOR UPDATE`), channelID, since, admit)
	if err != nil {
		return fmt.Errorf("lock the present clients: %w", err)
	}
	for rows.Next() {
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("lock the present clients: %w", err)
	}
	return nil
}

// Unremove ends the removal of client clientID from channelID, expired or
// not; ErrNotFound when there is none.
func (s *Store) Unremove(ctx context.Context, channelID, clientID string) error {
	defer s.forgetChannel(channelID)
	return s.execOne(ctx, "unremove client "+clientID+" from channel "+channelID,
		`DELETE FROM channel_removals WHERE channel_id = ? AND client_id = ?`, channelID, clientID)
}

// Lock locks channelID at time at, unless it is locked already, and
// returns the time it is locked since. The clients present at the lock
// (connected, or logged in since at minus LockPresence) are admitted, and
// so is client admit (the locking manager's; "" for none) on either
// path. ErrNotFound for an unknown channel.
func (s *Store) Lock(ctx context.Context, channelID string, at time.Time, admit string) (time.Time, error) {
	what := "lock channel " + channelID
	tx, err := s.begin(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	if err := s.lockChannel(ctx, tx, channelID); err != nil {
		return time.Time{}, notFound(err, what)
	}
	var locked sql.NullInt64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT locked FROM channels WHERE id = ?`), channelID).Scan(&locked); err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	if !locked.Valid {
		locked = sql.NullInt64{Int64: micros(at), Valid: true}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE channels SET locked = ? WHERE id = ?`), locked.Int64, channelID); err != nil {
			return time.Time{}, fmt.Errorf("%s: %w", what, err)
		}
		if err := s.lockClientsInOrder(ctx, tx, channelID, micros(at.Add(-LockPresence)), admit); err != nil {
			return time.Time{}, fmt.Errorf("%s: %w", what, err)
		}
		_, err := tx.ExecContext(ctx, s.q(
			`UPDATE clients SET admitted = ?
			 WHERE channel_id = ? AND (connected IS NOT NULL OR last_login >= ?)`),
			locked.Int64, channelID, micros(at.Add(-LockPresence)))
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: admit the present: %w", what, err)
		}
	}
	if admit != "" {
		_, err := tx.ExecContext(ctx, s.q(`UPDATE clients SET admitted = ? WHERE id = ? AND channel_id = ?`), locked.Int64, admit, channelID)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: admit %s: %w", what, admit, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	s.forgetChannel(channelID)
	return fromMicros(locked.Int64), nil
}

// Unlock unlocks channelID; ErrNotFound for an unknown channel.
func (s *Store) Unlock(ctx context.Context, channelID string) error {
	defer s.forgetChannel(channelID)
	return s.execOne(ctx, "unlock channel "+channelID, `UPDATE channels SET locked = NULL WHERE id = ?`, channelID)
}

// Admit admits client clientID of channelID to the lock of time locked (a
// manager's page view). ErrNotFound when the client is not in that channel
// or the channel is no longer locked at that time.
func (s *Store) Admit(ctx context.Context, channelID, clientID string, locked time.Time) error {
	return s.execOne(ctx, "admit client "+clientID+" to channel "+channelID,
		`UPDATE clients SET admitted = ? WHERE id = ? AND channel_id = ?
		 AND EXISTS (SELECT 1 FROM channels WHERE id = ? AND locked = ?)`,
		micros(locked), clientID, channelID, channelID, micros(locked))
}

// Moderation returns channelID's moderation state as read less than
// ModerationAge ago. A channel that has never had a removal costs one
// query a ModerationAge at most, and none when ClientInChannel read it
// within RecentChannelAge; ErrNotFound for an unknown channel.
func (s *Store) Moderation(ctx context.Context, channelID string) (Moderation, error) {
	now := s.now()
	if m, ok := s.mods.get(channelID, now); ok {
		return m, nil
	}
	if ch, ok := s.recent.get(channelID, now); ok && !ch.RemovalsUntil.After(now) {
		return Moderation{Locked: ch.Locked}, nil
	}
	return s.FreshModeration(ctx, channelID)
}

// FreshModeration reads channelID's moderation state from the database,
// whatever this process remembers, and remembers it for Moderation: one
// query, two while the channel has active removals. For an answer that
// must hold another process's change of a moment ago (a page that reads
// the state once per change it hears of); ErrNotFound for an unknown
// channel.
func (s *Store) FreshModeration(ctx context.Context, channelID string) (Moderation, error) {
	now := s.now()
	gen := s.mods.generation(channelID)
	var locked, removals sql.NullInt64
	err := s.queryRow(ctx, `SELECT locked, removals_until FROM channels WHERE id = ?`, channelID).Scan(&locked, &removals)
	if err != nil {
		return Moderation{}, notFound(err, "moderation of channel "+channelID)
	}
	m := Moderation{Locked: nullTime(locked)}
	if nullTime(removals).After(now) {
		if m.Removed, err = s.activeRemovals(ctx, channelID, now); err != nil {
			return Moderation{}, err
		}
	}
	s.afterRead(channelID)
	s.mods.put(channelID, m, now, gen)
	return m, nil
}

// ModerationOf is Moderation for a channel just read (ChannelByID,
// ClientInChannel, RecentChannel): one that has had no removal since
// RemovalsUntil costs no query.
func (s *Store) ModerationOf(ctx context.Context, ch Channel) (Moderation, error) {
	if !ch.RemovalsUntil.After(s.now()) {
		return Moderation{Locked: ch.Locked}, nil
	}
	return s.Moderation(ctx, ch.ID)
}

// activeRemovals reads the removals of channelID that last beyond now.
func (s *Store) activeRemovals(ctx context.Context, channelID string, now time.Time) (map[string]Removal, error) {
	what := "removals of channel " + channelID
	rows, err := s.query(ctx,
		`SELECT client_id, until, removed_by, created, origin FROM channel_removals
		 WHERE channel_id = ? AND until > ? LIMIT ?`, channelID, micros(now), MaxActiveRemovals)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := map[string]Removal{}
	for rows.Next() {
		var r Removal
		var until, created int64
		var by sql.NullInt64
		if err := rows.Scan(&r.ClientID, &until, &by, &created, &r.Origin); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		r.Until, r.By, r.Created = fromMicros(until), by.Int64, fromMicros(created)
		out[r.ClientID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// deleteRemovalsExpiredAt deletes the removals that ended by now.
func (s *Store) deleteRemovalsExpiredAt(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM channel_removals WHERE until <= ?`, micros(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired removals: %w", err)
	}
	return res.RowsAffected()
}

// ForgetClient drops what this process remembers of the channel of
// client id (a removal another process made), so that its next page view
// or login reads the moderation state afresh. An unknown client is no
// error: there is nothing to forget.
func (s *Store) ForgetClient(ctx context.Context, id string) error {
	var ch string
	err := s.queryRow(ctx, `SELECT channel_id FROM clients WHERE id = ?`, id).Scan(&ch)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("channel of client %s: %w", id, err)
	}
	s.forgetChannel(ch)
	return nil
}

// forgetChannel drops what this process remembers of channel id, so that
// it sees its own change at once.
func (s *Store) forgetChannel(id string) {
	s.recent.forget(id)
	s.mods.forget(id)
}

// Bounds of the moderation cache: channels, and removals over all of
// them (each channel holds at most MaxActiveRemovals).
const (
	maxCachedModerations = 10000
	maxCachedRemovals    = 100000
)

// moderations remembers the moderation state Moderation read, with when.
type moderations struct {
	mu       sync.Mutex
	m        map[string]cachedModeration
	removals int // the removals held in m
	forgets  forgets
}

type cachedModeration struct {
	mod  Moderation
	read time.Time
}

func (c *moderations) get(id string, now time.Time) (Moderation, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	// A clock that went back counts as stale too.
	if !ok || now.Before(e.read) || now.Sub(e.read) >= ModerationAge {
		return Moderation{}, false
	}
	return e.mod, true
}

// generation returns the count of forgets of id's slot, taken before a
// read that put will keep.
func (c *moderations) generation(id string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.forgets.of(id)
}

// put keeps m as read at now, unless a forget of id's slot came since
// generation returned gen: the read may predate that change.
func (c *moderations) put(id string, m Moderation, now time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets.of(id) != gen {
		return
	}
	if c.m == nil {
		c.m = map[string]cachedModeration{}
	}
	c.drop(id)
	if len(c.m) >= maxCachedModerations || c.removals+len(m.Removed) > maxCachedRemovals {
		for k, e := range c.m {
			if now.Sub(e.read) >= ModerationAge || now.Before(e.read) {
				c.drop(k)
			}
		}
		if len(c.m) >= maxCachedModerations || c.removals+len(m.Removed) > maxCachedRemovals {
			clear(c.m)
			c.removals = 0
		}
	}
	c.m[id] = cachedModeration{m, now}
	c.removals += len(m.Removed)
}

// drop forgets id; c.mu is held.
func (c *moderations) drop(id string) {
	if e, ok := c.m[id]; ok {
		c.removals -= len(e.mod.Removed)
		delete(c.m, id)
	}
}

func (c *moderations) forget(id string) {
	c.mu.Lock()
	c.forgets.bump(id)
	c.drop(id)
	c.mu.Unlock()
}

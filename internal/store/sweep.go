package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sweep rules: which clients the background sweeper deletes. A client the
// page can re-create from the browser's session (a session written since
// migration 0004 holds the client's id and password) costs nothing to
// delete while nobody uses it, so unused clients go after a short grace,
// and a browser that keeps its session still gets its client back, with
// the same id, on its next visit.
type SweepRules struct {
	// Now is the time the rules are measured from.
	Now time.Time
	// NeverLoggedIn deletes clients that never logged in to the signalling
	// server and were created longer ago than this; 0 keeps them. It is the
	// time a page may stay open before it logs in.
	NeverLoggedIn time.Duration
	// Idle deletes clients that are not connected and last logged in
	// longer ago than this; 0 keeps them.
	Idle time.Duration
}

// sweepBatch bounds each DELETE, so that on SQLite a large sweep never
// holds the write lock for long.
const sweepBatch = 500

// DeleteUnusedClients deletes, by the rules, clients that are not
// connected and have not logged in recently, and returns how many went.
// Clients created before migration 0004 are kept: their browsers'
// sessions do not hold the password that re-creating them takes.
func (s *Store) DeleteUnusedClients(ctx context.Context, rules SweepRules) (int64, error) {
	var since int64
	err := s.queryRow(ctx, `SELECT applied FROM schema_migrations WHERE version = 4`).Scan(&since)
	if err != nil {
		return 0, fmt.Errorf("delete unused clients: find migration 4: %w", err)
	}
	never, idle := int64(-1), int64(-1) // no time is before -1: keep all
	if rules.NeverLoggedIn > 0 {
		never = micros(rules.Now.Add(-rules.NeverLoggedIn))
	}
	if rules.Idle > 0 {
		idle = micros(rules.Now.Add(-rules.Idle))
	}
	var total int64
	for {
		res, err := s.exec(ctx,
			`DELETE FROM clients WHERE id IN (
			   SELECT id FROM clients
			   WHERE connected IS NULL AND created >= ?
			     AND ((last_login IS NULL AND created < ?) OR last_login < ?)
			   LIMIT `+fmt.Sprint(sweepBatch)+`)`,
			since, never, idle)
		if err != nil {
			return total, fmt.Errorf("delete unused clients: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("delete unused clients: %w", err)
		}
		total += n
		if n < sweepBatch {
			return total, nil
		}
	}
}

// Checkpoint copies SQLite's write-ahead log into the database and
// truncates it to nothing, so a burst of writes does not leave a large WAL
// file behind (SQLite's own checkpoints reuse the file but never shrink it,
// and cannot finish while readers keep arriving). It waits for readers up
// to the busy timeout and reports false when some kept the log busy. On
// PostgreSQL it does nothing.
func (s *Store) Checkpoint(ctx context.Context) (bool, error) {
	if s.dialect != SQLite {
		return true, nil
	}
	var busy, logPages, done int
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done); err != nil {
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	return busy == 0, nil
}

// SweepResult is what one sweep removed.
type SweepResult struct {
	Sessions, Clients int64
	// Devices is how many expired trusted devices went.
	Devices int64
	// Removals is how many ended removals (moderation.go) went.
	Removals int64
	// Checkpointed is false when readers kept SQLite's WAL from being
	// truncated; the next sweep tries again.
	Checkpointed bool
}

// Sweep runs one pass of the background sweeper: it deletes expired
// sessions, unused clients, expired trusted devices and ended removals,
// then checkpoints the WAL.
func (s *Store) Sweep(ctx context.Context, rules SweepRules) (SweepResult, error) {
	var r SweepResult
	var errs []error
	var err error
	if r.Sessions, err = s.deleteSessionsExpiredAt(ctx, rules.Now); err != nil {
		errs = append(errs, err)
	}
	if r.Clients, err = s.DeleteUnusedClients(ctx, rules); err != nil {
		errs = append(errs, err)
	}
	if r.Devices, err = s.deleteTrustedDevicesExpiredAt(ctx, rules.Now); err != nil {
		errs = append(errs, err)
	}
	if r.Removals, err = s.deleteRemovalsExpiredAt(ctx, rules.Now); err != nil {
		errs = append(errs, err)
	}
	if r.Checkpointed, err = s.Checkpoint(ctx); err != nil {
		errs = append(errs, err)
	}
	return r, errors.Join(errs...)
}

func (s *Store) deleteSessionsExpiredAt(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE expiry <= ?`, micros(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return res.RowsAffected()
}

// SweeperOptions configure RunSweeper.
type SweeperOptions struct {
	// Every is the time between sweeps.
	Every time.Duration
	// NeverLoggedIn and Idle are the SweepRules durations.
	NeverLoggedIn, Idle time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Report receives each sweep's result and error; nil ignores them.
	Report func(SweepResult, error)
}

// RunSweeper sweeps once at once, then every opts.Every, until ctx ends.
func (s *Store) RunSweeper(ctx context.Context, opts SweeperOptions) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	t := time.NewTicker(opts.Every)
	defer t.Stop()
	for {
		r, err := s.Sweep(ctx, SweepRules{Now: now(), NeverLoggedIn: opts.NeverLoggedIn, Idle: opts.Idle})
		if ctx.Err() != nil {
			return
		}
		if opts.Report != nil {
			opts.Report(r, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

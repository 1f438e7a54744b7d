package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
)

// ErrDiskFull is CheckWrite's error when the file system holding the
// SQLite database has less than MinFreeBytes left.
var ErrDiskFull = errors.New("disk full")

// MinFreeBytes is the free space CheckWrite wants on the file system of a
// SQLite database: below it, writes (a session, a sign-in) are about to
// fail with SQLITE_FULL, or already do, although a small write may still
// fit in space the WAL file holds.
const MinFreeBytes = 1 << 20

// writeCheckClaim is the row of claims that CheckWrite rewrites; no
// one-time action has this name.
const writeCheckClaim = "health: write check"

// CheckWrite reports whether the database can take writes now: it commits
// a one-row upsert (a row of its own in claims), which needs the database
// to be writable and, on PostgreSQL, room for its WAL; on SQLite it also
// wants MinFreeBytes free on the database's file system, since a small
// commit may fit in the WAL file's existing pages while the disk is full
// (ErrDiskFull). It costs a commit: call it at most about once a second.
func (s *Store) CheckWrite(ctx context.Context) error {
	if s.dialect == SQLite {
		if err := s.checkFreeSpace(ctx); err != nil {
			return err
		}
	}
	_, err := s.exec(ctx, `INSERT INTO claims (name, claimed) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET claimed = excluded.claimed`,
		writeCheckClaim, micros(s.now()))
	if err != nil {
		return fmt.Errorf("write check: %w", err)
	}
	return nil
}

// checkFreeSpace returns ErrDiskFull when the file system holding the
// SQLite database has less than MinFreeBytes available to this process.
func (s *Store) checkFreeSpace(ctx context.Context) error {
	var seq int
	var name string
	var file sql.NullString
	if err := s.db.QueryRowContext(ctx, `PRAGMA database_list`).Scan(&seq, &name, &file); err != nil {
		return fmt.Errorf("find the database file: %w", err)
	}
	if !file.Valid || file.String == "" {
		return nil // in memory
	}
	dir := filepath.Dir(file.String)
	free, known, err := freeBytes(dir)
	if err != nil {
		return fmt.Errorf("free space of %s: %w", dir, err)
	}
	if known && free < MinFreeBytes {
		return fmt.Errorf("%w: %d KiB free for %s", ErrDiskFull, free>>10, file.String)
	}
	return nil
}

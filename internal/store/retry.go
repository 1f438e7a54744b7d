package store

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// How the store rides out a PostgreSQL restart. A fast restart ("pg_ctl
// restart -m fast", a failover, pg_terminate_backend) ends every backend:
// each pooled connection's next statement reads SQLSTATE 57P01
// (admin_shutdown) or finds the socket closed. database/sql retries on
// another pooled connection only when the driver knows the statement was
// never sent, and every pooled connection is as dead as the first. So a
// statement that finds its connection gone is run once more, after the
// idle pool is emptied, which makes that attempt (and every other
// statement's) dial a fresh connection:
//
//   - reads (queryRow, query), once for any sign of a lost connection;
//   - writes (exec) and BEGIN only when the statement cannot have run:
//     the server said it ended the session (57P01, 57P02, 57P03), or the
//     driver says nothing was sent. A connection that breaks after a write
//     was sent may have committed it, and most writes are not idempotent.
//
// A database that is down stays down: one more attempt, then the error,
// which IsUnavailable classifies for the callers that answer "try again".

// retryable reports whether err says the connection of a statement was
// lost in a way that another connection may not share. write narrows it to
// the errors after which the statement surely did not run.
func retryable(err error, write bool) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || pgconn.SafeToRetry(err) {
		return true
	}
	if write {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// retry decides whether a statement that failed with err runs once more
// (retryable), and if so empties the idle pool first so that it runs on a
// fresh connection, and counts it.
func (s *Store) retry(err error, write bool) bool {
	if s.dialect != Postgres || !retryable(err, write) {
		return false
	}
	s.retries.Add(1)
	s.dropIdle()
	return true
}

// dropIdle closes the pool's idle connections: after one was found ended
// by the server, the others, opened before the same restart, are too.
func (s *Store) dropIdle() {
	n := int(s.poolSize.Load())
	s.db.SetMaxIdleConns(0) // closes the idle ones
	s.db.SetMaxIdleConns(n)
}

// Retries returns how many statements the store ran a second time because
// their connection was lost (see retry.go).
func (s *Store) Retries() int64 { return s.retries.Load() }

// IsUnavailable reports whether err means the database could not be
// reached or lost the connection — an outage or a restart, not an answer:
// whoever asked should be told to try again, never "not found" or "no".
// Statement errors the database answered (a constraint, a syntax error),
// ErrNotFound and ErrConflict are not.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return false
	}
	if retryable(err, false) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 53: insufficient resources
		// (too many connections, disk full); 57: operator intervention.
		c := pgErr.Code
		return len(c) == 5 && (c[:2] == "08" || c[:2] == "53" || c[:2] == "57")
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) || errors.Is(err, syscall.ECONNREFUSED)
}

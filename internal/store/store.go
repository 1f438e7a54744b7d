// Package store keeps Channels' data — users, channels, clients and browser
// sessions — in SQLite (the default, pure Go) or PostgreSQL, behind one API
// whose queries run unchanged on both.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	"modernc.org/sqlite"               // SQLite driver "sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrNotFound is returned when a looked-up row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a unique value is already taken.
	ErrConflict = errors.New("already exists")
)

// Dialect names a supported database.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

//go:embed migrations
var migrations embed.FS

// Store is the database of one Channels deployment. It is safe for
// concurrent use.
type Store struct {
	db      *sql.DB
	dialect Dialect
	now     func() time.Time

	mu    sync.Mutex
	stmts map[string]*sql.Stmt // prepared statements by query as written

	recent  recentChannels // see RecentChannel
	mods    moderations    // see Moderation
	queries atomic.Int64   // see Queries
	retries atomic.Int64   // see Retries
	// poolSize is the idle connections PostgreSQL's pool keeps, which
	// dropIdle restores after emptying it.
	poolSize atomic.Int32

	// readHook, set by tests only, runs between the query of a read that
	// a cache keeps and its keeping: a change can race it there.
	readHook func(channelID string)
}

// afterRead runs the test hook of a read a cache keeps (readHook).
func (s *Store) afterRead(channelID string) {
	if s.readHook != nil {
		s.readHook(channelID)
	}
}

// Open connects to the database named by databaseURL — a postgres:// or
// postgresql:// URL for PostgreSQL, anything else a SQLite file path
// (optionally prefixed with sqlite:) — and applies pending migrations.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	s, err := open(databaseURL)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// Warm opens n connections and returns them to the pool idle, so that the
// first burst of requests after a start does not wait for PostgreSQL to
// start a backend per connection (measured on the channel page, 16
// connections: p99 of the first 5 s 914 ms cold, 26 ms after warming 16).
// SQLite connections are cheap, so it does nothing there. Failures are
// left to the first real query.
func (s *Store) Warm(ctx context.Context, n int) {
	if s.dialect != Postgres {
		return
	}
	// More than the pool allows would wait for a free connection forever.
	if max := s.db.Stats().MaxOpenConnections; max > 0 {
		n = min(n, max)
	}
	conns := make([]*sql.Conn, 0, n)
	for range n {
		c, err := s.db.Conn(ctx)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
}

func open(databaseURL string) (*Store, error) {
	if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		db, err := sql.Open("pgx", databaseURL)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		db.SetMaxOpenConns(DefaultPoolSize)
		db.SetMaxIdleConns(DefaultPoolSize)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s := &Store{db: db, dialect: Postgres, now: time.Now, stmts: map[string]*sql.Stmt{}}
		s.poolSize.Store(DefaultPoolSize)
		return s, nil
	}
	path := strings.TrimPrefix(databaseURL, "sqlite:")
	if path == "" {
		return nil, errors.New("open sqlite: empty database path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("open sqlite: create data directory: %w", err)
		}
	}
	// The database holds password hashes and session keys: a new file is
	// made 0600 here, before SQLite would make it 0644, and SQLite gives
	// its -wal and -shm files the database file's mode. An existing file
	// keeps the mode its operator gave it.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open sqlite: create %s: %w", path, err)
	}
	// WAL lets readers run beside the one writer; busy_timeout makes writers
	// wait instead of failing (it comes first: switching a new file to WAL
	// takes a lock that processes opening it at once would otherwise fail
	// on); _txlock=immediate takes the write lock at
	// BEGIN so a transaction never fails half-way on lock upgrade;
	// journal_size_limit shrinks the WAL file back to 4 MiB whenever a
	// checkpoint lets SQLite start it afresh (Checkpoint truncates it).
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=journal_size_limit(4194304)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	return &Store{db: db, dialect: SQLite, now: time.Now, stmts: map[string]*sql.Stmt{}}, nil
}

// DefaultPoolSize is how many PostgreSQL connections a Store opens at
// most until SetPoolSize says otherwise.
const DefaultPoolSize = 16

// SetPoolSize bounds the PostgreSQL connections the store opens (and
// keeps idle) to n; several processes on one server share its
// max_connections. SQLite keeps its own pool: it does nothing there.
func (s *Store) SetPoolSize(n int) {
	if s.dialect != Postgres || n < 1 {
		return
	}
	s.poolSize.Store(int32(n))
	s.db.SetMaxOpenConns(n)
	s.db.SetMaxIdleConns(n)
}

// SetClock makes the store read the time from now: when it stamps rows
// and when it decides a session has expired. Tests move time with it
// instead of sleeping; Open starts with time.Now.
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// Close closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = map[string]*sql.Stmt{}
	s.mu.Unlock()
	return s.db.Close()
}

// stmt returns the prepared statement for a query written with ?
// placeholders, preparing it on first use. Preparing once saves SQLite
// from parsing and planning the same SQL on every request.
func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := s.prepared(query); st != nil {
		return st, nil
	}
	// Prepared without the lock: preparing waits for a pooled connection,
	// and every other statement would wait behind it.
	st, err := s.db.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if had, ok := s.stmts[query]; ok { // another caller prepared it meanwhile
		st.Close()
		return had, nil
	}
	s.stmts[query] = st
	return st, nil
}

// prepared returns the statement stmt prepared for query, if any.
func (s *Store) prepared(query string) *sql.Stmt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stmts[query]
}

// scanner is a row to scan: *sql.Row, *sql.Rows, or a failed preparation.
type scanner interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

// Queries returns how many statements the store has run outside
// transactions and migrations since it opened: each one round trip to
// PostgreSQL. Tests hold the busiest pages to their budget with it.
func (s *Store) Queries() int64 { return s.queries.Load() }

// queryRow, query and exec run a statement prepared once (stmt). One
// whose connection a PostgreSQL restart ended runs once more on a fresh
// connection (retry.go): reads for any sign of a lost connection, writes
// only when they cannot have run.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) scanner {
	if b := s.txOf(ctx); b != nil { // in a Batch (batch.go)
		st, err := b.stmt(ctx, query)
		if err != nil {
			return errRow{err}
		}
		return st.QueryRowContext(ctx, args...)
	}
	s.queries.Add(1)
	// A statement that writes (INSERT … RETURNING) is retried only when it
	// cannot have run: its connection may have died after the commit.
	write := !isSelect(query)
	for again := false; ; again = true {
		st, err := s.stmt(ctx, query)
		if err != nil {
			if !again && s.retry(err, write) {
				continue
			}
			return errRow{err}
		}
		// database/sql runs the query here and keeps its error for Scan;
		// pgx reads the first row before returning, so a lost connection
		// shows in Err already.
		row := st.QueryRowContext(ctx, args...)
		if !again && s.retry(row.Err(), write) {
			continue
		}
		return row
	}
}

// isSelect reports whether query is a read (it starts with SELECT),
// which may run again after its connection was lost whatever became of
// it; anything else (INSERT … RETURNING) may have committed.
func isSelect(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if b := s.txOf(ctx); b != nil {
		st, err := b.stmt(ctx, query)
		if err != nil {
			return nil, err
		}
		return st.QueryContext(ctx, args...)
	}
	s.queries.Add(1)
	for again := false; ; again = true {
		st, err := s.stmt(ctx, query)
		var rows *sql.Rows
		if err == nil {
			rows, err = st.QueryContext(ctx, args...)
		}
		if err != nil && !again && s.retry(err, false) {
			continue
		}
		return rows, err
	}
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if b := s.txOf(ctx); b != nil {
		st, err := b.stmt(ctx, query)
		if err != nil {
			return nil, err
		}
		return st.ExecContext(ctx, args...)
	}
	s.queries.Add(1)
	for again := false; ; again = true {
		st, err := s.stmt(ctx, query)
		if err != nil {
			if !again && s.retry(err, false) { // nothing ran: preparing failed
				continue
			}
			return nil, err
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil && !again && s.retry(err, true) {
			continue
		}
		return res, err
	}
}

// begin starts a transaction; a BEGIN whose connection a restart ended
// is sent once more on a fresh one.
func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	if s.txOf(ctx) != nil {
		return nil, ErrNestedTx
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil && s.retry(err, true) {
		tx, err = s.db.BeginTx(ctx, nil)
	}
	return tx, err
}

// Dialect reports which database the store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// Stats reports the connection pool's statistics.
func (s *Store) Stats() sql.DBStats { return s.db.Stats() }

// Ping checks that the database answers, for health checks.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// migrateLock is the PostgreSQL advisory lock key that serialises
// migrations of one database across processes.
const migrateLock = 727465

// Migrate applies the migrations not yet applied, each in its own
// transaction, in version order. Concurrent callers (several processes
// starting at once) are serialised by the database: on PostgreSQL by one
// advisory lock held on one connection around the whole migration,
// including the creation of schema_migrations (two processes creating it at
// once would collide on PostgreSQL's catalog); on SQLite by the write lock
// every transaction takes at BEGIN.
func (s *Store) Migrate(ctx context.Context) error {
	// SQLite answers "busy" without waiting while another process turns a
	// new file into WAL mode; that passes in milliseconds, so try again.
	giveUp := time.Now().Add(15 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := s.migrate(ctx)
		if !isBusy(err) || time.Now().After(giveUp) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var liteErr *sqlite.Error
	return errors.As(err, &liteErr) && liteErr.Code()&0xff == sqlite3.SQLITE_BUSY
}

func (s *Store) migrate(ctx context.Context) error {
	dir := "migrations/" + string(s.dialect)
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	type migration struct {
		version int
		name    string
	}
	var all []migration
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migrate: bad migration file name %q", e.Name())
		}
		all = append(all, migration{v, e.Name()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].version < all[j].version })

	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if s.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+strconv.Itoa(migrateLock)+`)`); err != nil {
			return fmt.Errorf("migrate: take lock: %w", err)
		}
		defer func() {
			// The lock belongs to the connection's session; should the
			// unlock fail, discard the connection rather than return it to
			// the pool still holding the lock.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock(`+strconv.Itoa(migrateLock)+`)`); err != nil {
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for _, m := range all {
		body, err := migrations.ReadFile(dir + "/" + m.name)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if err := s.applyMigration(ctx, conn, m.version, string(body)); err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
	}
	return nil
}

func (s *Store) applyMigration(ctx context.Context, conn *sql.Conn, version int, body string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`), version, micros(s.now())); err != nil {
		return err
	}
	return tx.Commit()
}

// q turns a query written with ? placeholders into the dialect's form.
// Queries never contain a literal question mark.
func (s *Store) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// micros and fromMicros convert between time.Time and the stored form:
// Unix microseconds, UTC.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// pgUniqueViolation is PostgreSQL's SQLSTATE for unique_violation.
const pgUniqueViolation = "23505"

// isUniqueViolation reports whether err is a unique-constraint failure on
// either database, by the drivers' error codes: PostgreSQL's SQLSTATE
// 23505, SQLite's extended codes for UNIQUE and PRIMARY KEY constraints.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == pgUniqueViolation
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
	}
	return false
}

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Claim reports whether this call is the first, across every process and
// restart, to claim the one-time action name. Processes starting together
// on one database agree on a single winner.
func (s *Store) Claim(ctx context.Context, name string) (bool, error) {
	res, err := s.exec(ctx, `INSERT INTO claims (name, claimed) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
		name, micros(s.now()))
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", name, err)
	}
	return n == 1, nil
}

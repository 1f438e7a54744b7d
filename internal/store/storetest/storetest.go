// Package storetest gives tests fresh, migrated stores on every supported
// database: a SQLite file in a temporary directory and a throw-away
// PostgreSQL database on the server named by CHANNELS_TEST_POSTGRES.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"channels/internal/store"
)

// DefaultPostgres is the server used when CHANNELS_TEST_POSTGRES is unset:
// the local PostgreSQL with trust authentication.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Backend is one store to run a test against.
type Backend struct {
	Name  string // "sqlite" or "postgres"
	Store *store.Store
	URL   string // the database URL, to open the same database again
}

// Stores returns a fresh store per supported database. A test ranges over
// it with t.Run(b.Name, …). SQLite is always there. Without a reachable
// PostgreSQL (outside CI) only the PostgreSQL half is skipped: Stores
// reports it as a skipped "postgres" subtest and returns SQLite alone. In
// CI a missing PostgreSQL fails the test.
func Stores(t testing.TB) []Backend {
	t.Helper()
	out := []Backend{SQLite(t)}
	if err := postgresReachable(); err != nil {
		skipPostgres(t, err)
		return out
	}
	return append(out, Postgres(t))
}

// skipPostgres fails t in CI and otherwise reports the PostgreSQL half as
// skipped, without skipping t itself.
func skipPostgres(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("PostgreSQL at %s is required in CI: %v", adminURL(), err)
	}
	reason := fmt.Sprintf("PostgreSQL at %s not reachable: %v", adminURL(), err)
	if tt, ok := t.(*testing.T); ok {
		tt.Run("postgres", func(t *testing.T) { t.Skip(reason) })
		return
	}
	t.Log(reason + "; the PostgreSQL half does not run")
}

// adminURL is the PostgreSQL server the tests create their databases on.
func adminURL() string {
	if u := os.Getenv("CHANNELS_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultPostgres
}

// postgresReachable reports why the test server cannot be reached, if it
// cannot.
func postgresReachable() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", adminURL())
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(ctx)
}

// SQLite returns a fresh store in a SQLite file of a temporary directory.
func SQLite(t testing.TB) Backend {
	t.Helper()
	u := SQLiteURL(t)
	return Backend{Name: "sqlite", Store: openStore(t, u), URL: u}
}

// SQLiteURL returns the path of a new SQLite database file.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "channels.db")
}

// Postgres returns a fresh store in a new PostgreSQL database that is
// dropped when the test ends. Without a reachable server the test is
// skipped — or fails, when the CI environment variable is set, so CI can
// never pass by skipping.
func Postgres(t testing.TB) Backend {
	t.Helper()
	u := PostgresURL(t)
	return Backend{Name: "postgres", Store: openStore(t, u), URL: u}
}

// PostgresURL creates a throw-away database and returns its URL.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := adminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", admin, err)
		}
		t.Skipf("PostgreSQL at %s not reachable: %v", admin, err)
	}
	db.Close()
	return newDatabase(t, admin, true)
}

// newDatabase creates a database with a random name on the server of
// admin and returns its URL; with drop, it is dropped when the test ends.
func newDatabase(t testing.TB, admin string, drop bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		db.Close()
		t.Fatal(err)
	}
	name := "channels_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		t.Fatalf("create database %s: %v", name, err)
	}
	if !drop {
		db.Close()
	} else {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				t.Errorf("drop database %s: %v", name, err)
			}
			db.Close()
		})
	}
	pu, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	pu.Path = "/" + name
	return pu.String()
}

func openStore(t testing.TB, databaseURL string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, databaseURL)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ChannelWithClient creates a channel on s, "Room", and one client of it:
// the setup of tests that need a client to look up, log in or report.
func ChannelWithClient(t testing.TB, s *store.Store) (store.Channel, store.Client) {
	t.Helper()
	ch, err := s.CreateChannel(t.Context(), "Room", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateClient(t.Context(), ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	return ch, c
}

// ClientIDs creates a channel on s and n clients of it, and returns the
// channel's id and theirs.
func ClientIDs(t testing.TB, s *store.Store, n int) (channelID string, ids []string) {
	t.Helper()
	ch, c := ChannelWithClient(t, s)
	ids = []string{c.ID}
	for len(ids) < n {
		c, err := s.CreateClient(t.Context(), ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	return ch.ID, ids[:n]
}

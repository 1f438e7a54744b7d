package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestIsUniqueViolation: unique violations are recognised by the drivers'
// error codes, wrapped or not, and nothing else is, whatever its message.
func TestIsUniqueViolation(t *testing.T) {
	ctx := context.Background()
	lite, err := open(filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	// liteErr runs the statements; the last must fail.
	liteErr := func(stmts ...string) error {
		t.Helper()
		for _, q := range stmts[:len(stmts)-1] {
			if _, err := lite.db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		_, err := lite.db.ExecContext(ctx, stmts[len(stmts)-1])
		if err == nil {
			t.Fatalf("%s: no error", stmts[len(stmts)-1])
		}
		return err
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"sqlite UNIQUE", liteErr(`CREATE TABLE u (x TEXT UNIQUE)`, `INSERT INTO u VALUES ('a')`, `INSERT INTO u VALUES ('a')`), true},
		{"sqlite PRIMARY KEY", liteErr(`CREATE TABLE p (x INTEGER PRIMARY KEY)`, `INSERT INTO p VALUES (1)`, `INSERT INTO p VALUES (1)`), true},
		{"sqlite wrapped", fmt.Errorf("put: %w", liteErr(`CREATE TABLE w (x TEXT PRIMARY KEY)`, `INSERT INTO w VALUES ('a')`, `INSERT INTO w VALUES ('a')`)), true},
		{"sqlite CHECK", liteErr(`CREATE TABLE c (x INTEGER CHECK (x > 1))`, `INSERT INTO c VALUES (0)`), false},
		{"postgres 23505", fmt.Errorf("put: %w", &pgconn.PgError{Code: "23505"}), true},
		{"postgres 23503", &pgconn.PgError{Code: "23503", Message: "SQLSTATE 23505"}, false},
		{"message only", errors.New("UNIQUE constraint failed: users.name (SQLSTATE 23505)"), false},
	}
	if pg := pgUniqueError(t); pg != nil {
		cases = append(cases, struct {
			name string
			err  error
			want bool
		}{"postgres real", pg, true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := isUniqueViolation(tc.err); got != tc.want {
				t.Errorf("isUniqueViolation(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// pgUniqueError returns a real unique violation from the test PostgreSQL,
// or nil (skipping that case) when none is reachable outside CI.
func pgUniqueError(t *testing.T) error {
	t.Helper()
	u := os.Getenv("CHANNELS_TEST_POSTGRES")
	if u == "" {
		u = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", u, err)
		}
		t.Logf("PostgreSQL at %s not reachable: %v", u, err)
		return nil
	}
	defer conn.Close()
	// A temporary table lives only in this connection's session.
	if _, err := conn.ExecContext(ctx, `CREATE TEMP TABLE u (x INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO u VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	_, err = conn.ExecContext(ctx, `INSERT INTO u VALUES (1)`)
	if err == nil {
		t.Fatal("duplicate insert: no error")
	}
	return err
}

package store_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"channels/internal/store/storetest"
)

// TestLockTakesClientsInOrder (PostgreSQL): Lock takes the rows of the
// clients it admits in id order, as the hub's report batches do, so that
// it never holds one client's row while it waits for another's that a
// batch holds. A transaction holds the smallest id's row, as a batch
// would while it goes on to larger ones; while Lock waits for that row,
// every other client's row must still be free. Before, Lock's UPDATE
// locked the rows in the order it found them: the smallest id's row,
// written last, was found last, after the others were taken — the
// batch's next write then waited for Lock, and Lock for the batch.
func TestLockTakesClientsInOrder(t *testing.T) {
	b := storetest.Postgres(t)
	s := b.Store
	ctx := context.Background()
	chID, ids := storetest.ClientIDs(t, s, 12)
	now := time.Now()
	for _, id := range ids {
		if err := s.ClientLoggedIn(ctx, id, "192.0.2.1:1", now); err != nil {
			t.Fatal(err)
		}
	}
	first := slices.Min(ids)
	// Written last: the first row an unordered scan comes to is another.
	if err := s.ClientLoggedIn(ctx, first, "192.0.2.1:2", now); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("pgx", b.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	batch, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Rollback()
	if _, err := batch.ExecContext(ctx, `UPDATE clients SET last_login = last_login WHERE id = $1`, first); err != nil {
		t.Fatal(err)
	}

	locked := make(chan error, 1)
	go func() {
		_, err := s.Lock(ctx, chID, now, "")
		locked <- err
	}()
	// Barrier: Lock waits for the row the batch holds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-locked:
			t.Fatalf("Lock returned (%v) while a transaction held a client's row", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Lock never waited for the row the transaction holds")
		}
		time.Sleep(10 * time.Millisecond) // polling for the wait, not waiting for it to happen
	}
	// The batch goes on to the other clients: none is held by Lock.
	rows, err := batch.QueryContext(ctx, `SELECT id FROM clients WHERE channel_id = $1 AND id <> $2 FOR UPDATE NOWAIT`, chID, first)
	if err != nil {
		t.Fatalf("a client's row was held by Lock while it waited for another: %v", err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Close(); err != nil || rows.Err() != nil {
		t.Fatalf("a client's row was held by Lock while it waited for another: %v %v", err, rows.Err())
	}
	if n != len(ids)-1 {
		t.Fatalf("%d other clients' rows taken, want %d", n, len(ids)-1)
	}
	if err := batch.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("Lock after the batch: %v", err)
	}
}

package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestDeleteUnusedClients: the sweeper deletes clients that never logged
// in once their grace is over, and clients idle for longer than the idle
// rule; it keeps connected clients, recent ones, and clients from before
// migration 0004, whose sessions cannot re-create them.
func TestDeleteUnusedClients(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			t0 := time.Now()
			ch, err := s.CreateChannel(ctx, "Room", true, 0)
			if err != nil {
				t.Fatal(err)
			}
			put := func(name string, created time.Time) string {
				t.Helper()
				c := store.Client{ID: name + "-" + ch.ID, Password: "pw", ChannelID: ch.ID, Created: created}
				if err := s.PutClient(ctx, c); err != nil {
					t.Fatal(err)
				}
				return c.ID
			}
			legacy := put("legacy", t0.Add(-time.Hour)) // before migration 0004
			unused := put("unused", t0.Add(time.Minute))
			young := put("young", t0.Add(50*time.Minute))
			online := put("online", t0.Add(time.Minute))
			if err := s.SetClientConnected(ctx, online, t0.Add(2*time.Minute)); err != nil {
				t.Fatal(err)
			}
			left := put("left", t0.Add(time.Minute))
			if err := s.SetClientConnected(ctx, left, t0.Add(2*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := s.ClearClientConnected(ctx, left); err != nil {
				t.Fatal(err)
			}

			rules := func(after time.Duration) store.SweepRules {
				return store.SweepRules{Now: t0.Add(after), NeverLoggedIn: time.Hour, Idle: 14 * 24 * time.Hour}
			}
			for _, step := range []struct {
				after   time.Duration
				deleted int64
				gone    []string
			}{
				{30 * time.Minute, 0, nil},
				{90 * time.Minute, 1, []string{unused}},
				{2 * time.Hour, 1, []string{unused, young}},
				{15 * 24 * time.Hour, 1, []string{unused, young, left}},
			} {
				n, err := s.DeleteUnusedClients(ctx, rules(step.after))
				if err != nil || n != step.deleted {
					t.Fatalf("after %v: deleted %d, %v; want %d", step.after, n, err, step.deleted)
				}
				gone := map[string]bool{}
				for _, id := range step.gone {
					gone[id] = true
				}
				for _, id := range []string{legacy, unused, young, online, left} {
					_, err := s.ClientByID(ctx, id)
					if gone[id] != errors.Is(err, store.ErrNotFound) {
						t.Errorf("after %v: client %s: err = %v, want gone = %v", step.after, id, err, gone[id])
					}
				}
			}
		})
	}
}

// TestSweep: one pass deletes expired sessions and unused clients and
// reports them.
func TestSweep(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			t0 := time.Now()
			ch, err := s.CreateChannel(ctx, "Room", true, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateClient(ctx, ch.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.Sessions().CommitCtx(ctx, "short", []byte("x"), t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := s.Sessions().CommitCtx(ctx, "long", []byte("x"), t0.Add(time.Hour*24)); err != nil {
				t.Fatal(err)
			}
			r, err := s.Sweep(ctx, store.SweepRules{Now: t0.Add(2 * time.Hour), NeverLoggedIn: time.Hour})
			if err != nil || r.Sessions != 1 || r.Clients != 1 || !r.Checkpointed {
				t.Fatalf("Sweep = %+v, %v; want 1 session, 1 client, checkpointed", r, err)
			}
		})
	}
}

// TestRunSweeper: the sweeper sweeps at once and stops with its context.
func TestRunSweeper(t *testing.T) {
	s := storetest.SQLite(t).Store
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	swept := make(chan error, 1)
	go func() {
		defer close(done)
		s.RunSweeper(ctx, store.SweeperOptions{Every: time.Hour, NeverLoggedIn: time.Hour,
			Report: func(_ store.SweepResult, err error) {
				select {
				case swept <- err:
				default:
				}
			}})
	}()
	if err := <-swept; err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
}

// TestCheckpointShrinksWAL: a burst of inserts while a reader holds a
// snapshot (as page views do under load) grows SQLite's WAL, because no
// checkpoint can reset it; once the reader is done, Checkpoint truncates
// it.
func TestCheckpointShrinksWAL(t *testing.T) {
	b := storetest.SQLite(t)
	ctx := context.Background()
	s := b.Store
	ch, err := s.CreateChannel(ctx, "Room", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := sql.Open("sqlite", "file:"+b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	conn, err := reader.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM clients`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	const burst = 2000
	for range burst {
		if _, err := s.CreateClient(ctx, ch.ID); err != nil {
			t.Fatal(err)
		}
	}
	walSize := func() int64 {
		fi, err := os.Stat(b.URL + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	grown := walSize()
	if grown < 1<<20 {
		t.Fatalf("WAL after %d inserts under a reader: %d bytes; the test needs it to grow", burst, grown)
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	ok, err := s.Checkpoint(ctx)
	if err != nil || !ok {
		t.Fatalf("Checkpoint = %v, %v", ok, err)
	}
	if after := walSize(); after > 64<<10 {
		t.Fatalf("WAL after checkpoint: %d bytes (was %d), want ≤ 64 KiB", after, grown)
	}
	t.Logf("WAL: %d bytes after %d inserts under a reader, %d after Checkpoint", grown, burst, walSize())
}

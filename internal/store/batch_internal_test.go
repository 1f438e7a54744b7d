package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// TestBatchFullPoolColdStatement: a batch's first use of a statement does
// not need a second pooled connection. With SQLite's whole pool held by
// writers queued behind the batch's write lock, a batch that prepared on
// the pool (as the store's cached statements are) waited out its whole
// context, and held the statement cache's lock meanwhile, stopping every
// other statement of the process.
func TestBatchFullPoolColdStatement(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "batch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ch, err := s.CreateChannel(ctx, "a", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateClient(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	// ClientLoggedIn's statement has not run since the store opened: it
	// is cold.
	bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Batch(bctx, func(bctx context.Context) error {
		// Every other connection of the pool taken by a writer that
		// waits for the batch's write lock.
		var waiting []*sql.Conn
		for s.db.Stats().InUse < s.db.Stats().MaxOpenConnections {
			conn, err := s.db.Conn(ctx)
			if err != nil {
				return err
			}
			waiting = append(waiting, conn)
		}
		defer func() {
			for _, c := range waiting {
				c.Close()
			}
		}()
		return s.ClientLoggedIn(bctx, c.ID, "192.0.2.1:1", time.Now())
	})
	if err != nil {
		t.Fatalf("the batch failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the batch took %v with the pool full", d.Round(time.Millisecond))
	}
}

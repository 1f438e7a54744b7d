package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestConcurrentColdOpens: several processes starting at once on a fresh
// database all open it: the migration, schema_migrations included, runs
// under one lock (before, 8 cold opens × 20 rounds on PostgreSQL failed 36
// times with 23505/42710).
func TestConcurrentColdOpens(t *testing.T) {
	const opens, rounds = 8, 4
	for _, fresh := range []struct {
		name string
		url  func(testing.TB) string
	}{
		{"sqlite", storetest.SQLiteURL},
		{"postgres", storetest.PostgresURL},
	} {
		t.Run(fresh.name, func(t *testing.T) {
			for round := range rounds {
				u := fresh.url(t)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var wg sync.WaitGroup
				errs := make(chan error, opens)
				for range opens {
					wg.Go(func() {
						s, err := store.Open(ctx, u)
						if err != nil {
							errs <- err
							return
						}
						s.Close()
					})
				}
				wg.Wait()
				cancel()
				close(errs)
				for err := range errs {
					t.Errorf("round %d: open: %v", round, err)
				}
			}
		})
	}
}

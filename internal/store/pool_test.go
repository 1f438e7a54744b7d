package store_test

import (
	"testing"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestSetPoolSize: PostgreSQL opens DefaultPoolSize connections at most
// until told otherwise (-database-pool); SQLite keeps its own pool.
func TestSetPoolSize(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			before := b.Store.Stats().MaxOpenConnections
			b.Store.SetPoolSize(3)
			got := b.Store.Stats().MaxOpenConnections
			switch b.Store.Dialect() {
			case store.Postgres:
				if before != store.DefaultPoolSize || got != 3 {
					t.Errorf("pool %d, then %d after SetPoolSize(3)", before, got)
				}
			default:
				if got != before {
					t.Errorf("SQLite's pool changed from %d to %d", before, got)
				}
			}
		})
	}
}

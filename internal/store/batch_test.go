package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestBatch: the login and disconnect writes made in one Batch are one
// transaction — applied in order, seen by others only once committed, and
// not at all when the batch fails; a method that opens a transaction of
// its own fails inside one instead of waiting for it.
func TestBatch(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			chID, ids := storetest.ClientIDs(t, s, 3)
			connected := func(ctx context.Context, id string) bool {
				t.Helper()
				c, err := s.ClientByID(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				return !c.Connected.IsZero()
			}
			at := time.Now()
			err := s.Batch(ctx, func(ctx context.Context) error {
				// In order: 0 logs in and out, 1 out (stale) and in, 2 in.
				if err := s.ClientLoggedIn(ctx, ids[0], "192.0.2.1:1", at); err != nil {
					return err
				}
				if _, err := s.ClientDisconnected(ctx, ids[0], "192.0.2.1:1"); err != nil {
					return err
				}
				if _, err := s.ClientDisconnected(ctx, ids[1], "192.0.2.1:2"); err != nil {
					return err
				}
				for _, id := range ids[1:] {
					if err := s.ClientLoggedIn(ctx, id, "192.0.2.1:3", at); err != nil {
						return err
					}
				}
				if _, err := s.ClientDisconnected(ctx, "00000000-0000-4000-8000-000000000000", ""); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("disconnect of an unknown client in a batch: %v, want ErrNotFound", err)
				}
				if !connected(ctx, ids[2]) {
					t.Error("the batch does not see its own write")
				}
				if connected(context.Background(), ids[2]) {
					t.Error("a write of the batch is seen outside it before the commit")
				}
				if _, _, err := s.ReserveLogin(ctx, ids[0], chID, 10, at, at.Add(time.Second)); !errors.Is(err, store.ErrNestedTx) {
					t.Errorf("a transaction inside the batch: %v, want ErrNestedTx", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range []bool{false, true, true} {
				if got := connected(ctx, ids[i]); got != want {
					t.Errorf("client %d connected %v after the batch, want %v", i, got, want)
				}
			}

			boom := errors.New("boom")
			err = s.Batch(ctx, func(ctx context.Context) error {
				if _, err := s.ClientDisconnected(ctx, ids[1], "192.0.2.1:3"); err != nil {
					return err
				}
				if err := s.ClientLoggedIn(ctx, ids[0], "192.0.2.1:4", at); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("failed batch: %v, want its error", err)
			}
			for i, want := range []bool{false, true} {
				if got := connected(ctx, ids[i]); got != want {
					t.Errorf("client %d connected %v after a failed batch, want %v (as before it)", i, got, want)
				}
			}
		})
	}
}

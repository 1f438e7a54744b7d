package store_test

import (
	"context"
	"testing"
	"time"

	"channels/internal/store/storetest"
)

// TestClearConnectedExcept: of the clients marked connected before the
// given time, those the cluster does not hold are cleared; those it holds,
// those connected since, and those that were never connected stay as they
// are.
func TestClearConnectedExcept(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			ch, err := s.CreateChannel(ctx, "Room", true, 0)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			client := func(connected time.Time) string {
				t.Helper()
				c, err := s.CreateClient(ctx, ch.ID)
				if err != nil {
					t.Fatal(err)
				}
				if !connected.IsZero() {
					if err := s.ClientLoggedIn(ctx, c.ID, "192.0.2.1", connected); err != nil {
						t.Fatal(err)
					}
				}
				return c.ID
			}
			ghost := client(now.Add(-time.Hour))
			held := client(now.Add(-time.Hour))
			recent := client(now.Add(-time.Second))
			never := client(time.Time{})
			n, err := s.ClearConnectedExcept(ctx, func(id string) bool { return id == held }, now.Add(-10*time.Second))
			if err != nil || n != 1 {
				t.Fatalf("ClearConnectedExcept = %d, %v; want 1 (the ghost)", n, err)
			}
			for _, want := range []struct {
				id        string
				connected bool
			}{{ghost, false}, {held, true}, {recent, true}, {never, false}} {
				c, err := s.ClientByID(ctx, want.id)
				if err != nil {
					t.Fatal(err)
				}
				if got := !c.Connected.IsZero(); got != want.connected {
					t.Errorf("client %s: connected %v, want %v", want.id, got, want.connected)
				}
			}
		})
	}
}

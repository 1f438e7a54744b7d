package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestConnectedClients: only connected clients of the channel, never the
// one excepted, the most recently connected first, at most limit.
func TestConnectedClients(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			ch, err := s.CreateChannel(ctx, "a", false, 0)
			if err != nil {
				t.Fatal(err)
			}
			other, err := s.CreateChannel(ctx, "b", false, 0)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
			var cs []store.Client
			for i := range 5 {
				c, err := s.CreateClient(ctx, ch.ID)
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
				if i < 4 { // the last one never connects
					if err := s.ClientLoggedIn(ctx, c.ID, "127.0.0.1:1", at.Add(time.Duration(i)*time.Second)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := s.ClientDisconnected(ctx, cs[1].ID, ""); err != nil {
				t.Fatal(err)
			}
			elsewhere, err := s.CreateClient(ctx, other.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetClientConnected(ctx, elsewhere.ID, at); err != nil {
				t.Fatal(err)
			}

			for _, tt := range []struct {
				except string
				limit  int
				want   []string
			}{
				{cs[0].ID, 10, []string{cs[3].ID, cs[2].ID}},
				{cs[3].ID, 10, []string{cs[2].ID, cs[0].ID}},
				{"", 10, []string{cs[3].ID, cs[2].ID, cs[0].ID}},
				{"", 2, []string{cs[3].ID, cs[2].ID}},
				{cs[4].ID, 0, nil},
			} {
				got, err := s.ConnectedClients(ctx, ch.ID, tt.except, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("except %.8s limit %d: got %q, want %q", tt.except, tt.limit, got, tt.want)
				}
			}
			if got, err := s.ConnectedClients(ctx, "00000000-0000-4000-8000-000000000000", "", 10); err != nil || len(got) != 0 {
				t.Errorf("unknown channel: %q, %v", got, err)
			}
		})
	}
}

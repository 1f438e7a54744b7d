package store_test

import (
	"context"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestCountStored: CountClients and CountSessions count every row the
// web app's -max-stored-clients bounds, in every channel, connected or
// not, expired or not, and follow what the sweeper and channel deletion
// remove.
func TestCountStored(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			t0 := time.Now()
			check := func(step string, clients, sessions int64) {
				t.Helper()
				if n, err := s.CountClients(ctx); err != nil || n != clients {
					t.Errorf("%s: CountClients = %d, %v; want %d", step, n, err, clients)
				}
				if n, err := s.CountSessions(ctx); err != nil || n != sessions {
					t.Errorf("%s: CountSessions = %d, %v; want %d", step, n, err, sessions)
				}
			}
			check("empty", 0, 0)

			lobby, err := s.CreateChannel(ctx, "Lobby", true, 0)
			if err != nil {
				t.Fatal(err)
			}
			other, err := s.CreateChannel(ctx, "Other", false, 0)
			if err != nil {
				t.Fatal(err)
			}
			idle, err := s.CreateClient(ctx, lobby.ID)
			if err != nil {
				t.Fatal(err)
			}
			online, err := s.CreateClient(ctx, lobby.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetClientConnected(ctx, online.ID, t0); err != nil {
				t.Fatal(err)
			}
			if err := s.PutClient(ctx, store.Client{ID: "elsewhere-" + other.ID, Password: "pw", ChannelID: other.ID}); err != nil {
				t.Fatal(err)
			}
			for token, expiry := range map[string]time.Time{"live": t0.Add(time.Hour), "expired": t0.Add(-time.Hour)} {
				if err := s.Sessions().CommitCtx(ctx, token, []byte("data"), expiry); err != nil {
					t.Fatal(err)
				}
			}
			check("stored", 3, 2)

			// Two hours on, the sweeper deletes the clients that never
			// logged in and the expired session.
			res, err := s.Sweep(ctx, store.SweepRules{Now: t0.Add(2 * time.Hour), NeverLoggedIn: time.Hour})
			if err != nil || res.Clients != 2 || res.Sessions != 2 {
				t.Fatalf("Sweep = %+v, %v; want 2 clients and 2 sessions", res, err)
			}
			check("swept", 1, 0)
			if _, err := s.ClientByID(ctx, idle.ID); err == nil {
				t.Fatal("the idle client survived the sweep")
			}

			if err := s.DeleteChannel(ctx, lobby.ID); err != nil {
				t.Fatal(err)
			}
			check("channel deleted", 0, 0)
		})
	}
}

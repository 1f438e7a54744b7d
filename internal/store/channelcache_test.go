package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestRecentChannel: RecentChannel answers with the channel a
// ClientInChannel read, as read, for RecentChannelAge and no longer; a
// failed lookup adds nothing.
func TestRecentChannel(t *testing.T) {
	// A channel deleted on one process must be gone from every page within
	// a second or two.
	if store.RecentChannelAge > 2*time.Second {
		t.Fatalf("RecentChannelAge %v: deletions would show too late", store.RecentChannelAge)
	}
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			var mu sync.Mutex
			now := time.Now()
			s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

			ch, err := s.CreateChannel(ctx, "Room", true, 0)
			if err != nil {
				t.Fatal(err)
			}
			other, err := s.CreateChannel(ctx, "Other", true, 0)
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.CreateClient(ctx, ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.RecentChannel(ch.ID); ok {
				t.Fatal("a channel nobody looked up is recent")
			}
			if _, _, err := s.ClientInChannel(ctx, c.ID, other.ID); err == nil {
				t.Fatal("client found in another channel")
			}
			if _, ok := s.RecentChannel(other.ID); ok {
				t.Fatal("a failed lookup made its channel recent")
			}
			if _, _, err := s.ClientInChannel(ctx, c.ID, ch.ID); err != nil {
				t.Fatal(err)
			}
			// Answered as read for RecentChannelAge: what another process
			// changes meanwhile is not seen here until then.
			steps := []struct {
				name    string
				advance time.Duration
				want    bool
			}{
				{"just read", 0, true},
				{"almost a RecentChannelAge later", store.RecentChannelAge - time.Millisecond, true},
				{"a RecentChannelAge later", time.Millisecond, false},
				{"the clock went back", -store.RecentChannelAge - time.Second, false},
			}
			for _, st := range steps {
				advance(st.advance)
				got, ok := s.RecentChannel(ch.ID)
				if ok != st.want || (ok && got != ch) {
					t.Errorf("%s: RecentChannel = %+v, %v; want %+v, %v", st.name, got, ok, ch, st.want)
				}
			}
			// This process's own edit or deletion is seen at once.
			for _, change := range []struct {
				name string
				do   func() error
			}{
				{"edited", func() error { return s.UpdateChannel(ctx, store.Channel{ID: ch.ID, Topic: "Renamed", Public: true}) }},
				{"deleted", func() error { return s.DeleteChannel(ctx, ch.ID) }},
			} {
				if _, _, err := s.ClientInChannel(ctx, c.ID, ch.ID); err != nil {
					t.Fatal(err)
				}
				if _, ok := s.RecentChannel(ch.ID); !ok {
					t.Fatalf("before being %s: not recent after a lookup", change.name)
				}
				if err := change.do(); err != nil {
					t.Fatal(err)
				}
				if got, ok := s.RecentChannel(ch.ID); ok {
					t.Errorf("%s here: RecentChannel still answers %+v", change.name, got)
				}
			}
		})
	}
}

// TestQueries: Queries counts each statement, failed lookups included.
func TestQueries(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			ch, c := storetest.ChannelWithClient(t, s)
			steps := []struct {
				name string
				run  func() error
			}{
				{"client in channel", func() error { _, _, err := s.ClientInChannel(ctx, c.ID, ch.ID); return err }},
				{"unknown client", func() error { s.ClientByID(ctx, "none"); return nil }},
				{"session", func() error { _, _, err := s.Sessions().FindCtx(ctx, "token"); return err }},
				{"list", func() error { _, err := s.Channels(ctx); return err }},
			}
			for _, st := range steps {
				before := s.Queries()
				if err := st.run(); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if n := s.Queries() - before; n != 1 {
					t.Errorf("%s: %d queries, want 1", st.name, n)
				}
			}
		})
	}
}

// TestWarmBeyondPool: asking Warm for more connections than the pool
// holds opens what it can instead of waiting for ever.
func TestWarmBeyondPool(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b.Store.Warm(ctx, 1000)
			if ctx.Err() != nil {
				t.Fatal("Warm(1000) waited for connections the pool cannot open")
			}
		})
	}
}

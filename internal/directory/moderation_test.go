package directory

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"channels/internal/metrics"
	"channels/internal/metrics/metricstest"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// storeClock is the stores' clock in these tests: it moves only when told.
type storeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *storeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *storeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestModeratedLogins: the directory refuses the login of a removed client
// and, while its channel is locked, of a client not admitted to the lock;
// the one-minute client cache hides neither: a change made by this process
// shows at once, one made by another within store.ModerationAge. Refusals
// are logged and counted.
func TestModeratedLogins(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clk := &storeClock{now: time.Now()}
			b.Store.SetClock(clk.Now)
			other, err := store.Open(ctx, b.URL) // another process on the same database
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			other.SetClock(clk.Now)
			m := metrics.New()
			srv := httptest.NewServer(m.Handler(nil))
			defer srv.Close()
			before := metricstest.Scrape(t, srv.URL)

			f := newFixture(t, b.Store, 0, 4, func(o *Options) { o.Metrics = m.Moderation() })
			present, removed, newcomer, elsewhere := f.c[0], f.c[1], f.c[2], f.c[3]
			found := func(c store.Client) bool {
				t.Helper()
				e := parse(t, f.respond(lookup(c.ID)))
				return !e.NotFound && e.Params["password"] == c.Password
			}
			for _, c := range f.c {
				if !found(c) { // and cached
					t.Fatalf("client %s refused before any moderation", c.ID)
				}
			}
			if err := b.Store.ClientLoggedIn(ctx, present.ID, "192.0.2.1:5000", clk.Now()); err != nil {
				t.Fatal(err)
			}

			// This process removes: refused at once, from the cache too.
			if _, err := b.Store.Remove(ctx, f.ch.ID, removed.ID, 0, clk.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if found(removed) {
				t.Error("removed client logged in from the cache")
			}
			if !found(present) || !found(newcomer) {
				t.Error("a removal kept another client out")
			}

			// Another process locks: refused within ModerationAge.
			if _, err := other.Lock(ctx, f.ch.ID, clk.Now(), ""); err != nil {
				t.Fatal(err)
			}
			clk.advance(store.ModerationAge)
			if found(newcomer) {
				t.Error("client not admitted to the lock logged in")
			}
			if !found(present) {
				t.Error("client present at the lock refused")
			}
			// It reconnects (a reload): still in.
			if err := b.Store.ClearClientConnected(ctx, present.ID); err != nil {
				t.Fatal(err)
			}
			if !found(present) {
				t.Error("client present at the lock refused after a disconnect")
			}
			if found(removed) {
				t.Error("removed client logged in while locked")
			}

			// Another process unlocks and unremoves.
			if err := other.Unlock(ctx, f.ch.ID); err != nil {
				t.Fatal(err)
			}
			if err := other.Unremove(ctx, f.ch.ID, removed.ID); err != nil {
				t.Fatal(err)
			}
			clk.advance(store.ModerationAge)
			if !found(newcomer) || !found(removed) {
				t.Error("refused after the unlock and unremove")
			}
			if !strings.Contains(f.logs.String(), `level=WARN msg="directory login refused: removed from channel" login=`+removed.ID) {
				t.Errorf("removed client's refusal not logged at WARN:\n%s", f.logs)
			}

			// A channel deleted elsewhere: its clients are refused within
			// ModerationAge, cached or not.
			if err := other.DeleteChannel(ctx, f.ch.ID); err != nil {
				t.Fatal(err)
			}
			clk.advance(store.ModerationAge)
			if found(elsewhere) {
				t.Error("client of a deleted channel logged in from the cache")
			}

			after := metricstest.Scrape(t, srv.URL)
			for _, tt := range []struct {
				why  string
				want float64
			}{{"removed", 2}, {"locked", 1}} {
				if got := metricstest.Delta(before, after, "channels_moderation_refusals_total", "where", "login", "why", tt.why); got != tt.want {
					t.Errorf("login refusals for %s: %v, want %v", tt.why, got, tt.want)
				}
			}
		})
	}
}

// TestModeratedLoginsLimited: with a channel limit (no cache), the same
// refusals, before any place is held.
func TestModeratedLoginsLimited(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b.Store, 2, 2)
			if _, err := b.Store.Remove(ctx, f.ch.ID, f.c[0].ID, 0, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if e := parse(t, f.respond(lookup(f.c[0].ID))); !e.NotFound {
				t.Fatalf("removed client logged in: %+v", e)
			}
			if n, err := b.Store.CountConnectedClients(ctx, f.ch.ID); err != nil || n != 0 {
				t.Fatal(n, err)
			}
			// The refused login held no place: both places are free.
			if _, ok, err := b.Store.ReserveLogin(ctx, f.c[1].ID, f.ch.ID, 1, time.Now(), time.Now().Add(time.Minute)); err != nil || !ok {
				t.Errorf("a place was held by the refused login: %v, %v", ok, err)
			}
		})
	}
}

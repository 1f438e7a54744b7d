package directory

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"channels/internal/store/storetest"
)

// TestCachedAnswers: the directory entry a client's cache entry keeps
// rendered is that client's own, byte for byte what the registry renders
// without a cache; clients looked up in turn never get another's; a
// removal made by this process refuses the next lookup from the cache;
// and the cache stays within its size.
func TestCachedAnswers(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			const n = 6
			f := newFixture(t, b.Store, 0, n, func(o *Options) { o.CacheSize = n - 2 })
			plain := newFixture(t, b.Store, 0, 0, func(o *Options) { o.CacheTTL = -1 })
			want := make([][]byte, n)
			for i, c := range f.c {
				want[i] = plain.respond(lookup(c.ID))
				if !bytes.Contains(want[i], fmt.Appendf(nil, `<user id="%s">`, c.ID)) ||
					!bytes.Contains(want[i], fmt.Appendf(nil, `name="password" value="%s"`, c.Password)) {
					t.Fatalf("uncached answer for %s: %s", c.ID, want[i])
				}
			}
			// Rounds in turn, and backwards: from the store, then from the
			// cache (which holds fewer than n, so some come from the store
			// again).
			for round := range 3 {
				for j := range n {
					i := j
					if round%2 == 1 {
						i = n - 1 - j
					}
					if got := f.respond(lookup(f.c[i].ID)); !bytes.Equal(got, want[i]) {
						t.Fatalf("round %d, client %d: answer\n%s\nwant\n%s", round, i, got, want[i])
					}
				}
			}
			login := f.login(t)
			if got := len(login.cache.entries); got > n-2 {
				t.Errorf("cache holds %d clients, at most %d", got, n-2)
			}

			// A cached client removed by this process: refused at once.
			last := f.c[0]
			if _, body, ok := login.cache.getEntry(last.ID); !ok || body == nil {
				if got := f.respond(lookup(last.ID)); !bytes.Equal(got, want[0]) {
					t.Fatalf("answer %s", got)
				}
			}
			if _, body, ok := login.cache.getEntry(last.ID); !ok || body == nil {
				t.Fatal("client not cached with its answer")
			}
			if _, err := b.Store.Remove(context.Background(), f.ch.ID, last.ID, 0, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if got := parse(t, f.respond(lookup(last.ID))); !got.NotFound {
				t.Errorf("removed client answered from the cache: %+v", got)
			}
		})
	}
}

// login is the fixture's directory login handler.
func (f *fixture) login(t *testing.T) *Login {
	t.Helper()
	h, ok := f.reg.Match(lookup(f.c[0].ID)).(*Login)
	if !ok {
		t.Fatal("a lookup matches no *Login")
	}
	return h
}

package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestRestart: what one server instance wrote — channels, clients and
// sessions — a new instance on the same database sees, so a browser keeps
// its sign-in and its client ids across a restart.
func TestRestart(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			first := newSite(t, b.Store, nil)
			first.user("alice", "alice password", false)
			br := first.browser()
			br.signIn("alice", "alice password")
			r := br.post("/channels", url.Values{"topic": {"Survives restarts"}, "public": {"on"}})
			if r.status != http.StatusSeeOther {
				t.Fatalf("create: %d", r.status)
			}
			id := strings.TrimPrefix(r.header.Get("Location"), "/c/")
			before := br.channelPage(id)
			first.ts.Close()
			if err := b.Store.Close(); err != nil {
				t.Fatal(err)
			}

			st, err := store.Open(t.Context(), b.URL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			second := newSite(t, st, nil)
			// The same browser, now talking to the new instance (cookies
			// are per host, not per port).
			br.site = second

			if body := br.get("/").body; !strings.Contains(body, "Survives restarts") || !strings.Contains(body, "Sign out alice") {
				t.Errorf("index after restart lacks the channel or the sign-in:\n%s", body)
			}
			if after := br.channelPage(id); after.ClientID != before.ClientID || after.Password != before.Password {
				t.Errorf("client after restart %s, before %s", after.ClientID, before.ClientID)
			}
		})
	}
}

package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestChannelPageQueries walks browsers through the channel page's cases
// and counts the queries each view costs: a returning browser whose
// client has logged in costs its session's query alone, while the store
// read the channel within store.RecentChannelAge; everything else is
// looked up as before. Changes and deletions made elsewhere (another
// process, the command line) show within RecentChannelAge; a signed-in
// browser sees them at once.
func TestChannelPageQueries(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := newSite(t, b.Store, nil)
			s.freezeClock()
			b.Store.SetClock(s.srv.now)
			ctx := t.Context()
			owner := s.user("olga", "olga's password", false)
			ch := s.channel("Lobby", true, owner.ID)
			anon, own := s.browser(), s.browser()
			own.signIn("olga", "olga's password")
			clients := map[*browser]string{}
			login := func(br *browser) func() {
				return func() {
					if err := b.Store.ClientLoggedIn(ctx, clients[br], "192.0.2.1:5000", s.srv.now()); err != nil {
						t.Fatal(err)
					}
				}
			}
			rename := func(topic string) func() {
				return func() {
					c := ch
					c.Topic = topic
					if err := b.Store.UpdateChannel(ctx, c); err != nil {
						t.Fatal(err)
					}
				}
			}
			later := func(d time.Duration, then ...func()) func() {
				return func() {
					for _, f := range then {
						f()
					}
					s.advance(d)
				}
			}
			edit := func(topic string) func() {
				return func() {
					r := own.post("/c/"+ch.ID+"/edit", url.Values{"topic": {topic}, "public": {"on"}})
					if r.status != http.StatusSeeOther {
						t.Fatalf("edit: status %d", r.status)
					}
				}
			}
			steps := []struct {
				name    string
				br      *browser
				before  func()
				status  int
				queries int64
				topic   string
			}{
				// Channel, new client, new session; and, as the first new
				// client in a minute, the count of stored clients and
				// sessions (ceiling.go).
				{"new browser", anon, nil, 200, 5, "Lobby"},
				{"returning, client never logged in", anon, nil, 200, 2, "Lobby"},
				{"and again: looked up on every view", anon, nil, 200, 2, "Lobby"},
				{"first view after its login", anon, login(anon), 200, 3, "Lobby"}, // and the session is kept
				{"returning after a login", anon, nil, 200, 1, "Lobby"},
				{"and again", anon, nil, 200, 1, "Lobby"},
				{"channel read a RecentChannelAge ago", anon, later(store.RecentChannelAge), 200, 2, "Lobby"},
				{"renamed elsewhere: shown within RecentChannelAge", anon, later(store.RecentChannelAge, rename("Hall")), 200, 2, "Hall"},
				{"trusted again", anon, nil, 200, 1, "Hall"},

				{"signed-in owner, new client", own, nil, 200, 5, "Hall"}, // and the user
				{"signed-in owner after a login", own, login(own), 200, 4, "Hall"},
				{"signed in: looked up on every view", own, nil, 200, 3, "Hall"},
				{"owner's edit: seen at once by the owner", own, edit("Atrium"), 200, 3, "Atrium"},
				{"and by the others within RecentChannelAge", anon, later(store.RecentChannelAge), 200, 2, "Atrium"},

				{"half a lifetime after the login", anon, later(s.srv.loggedInTrust()), 200, 2, "Atrium"},
				{"trust lapsed: looked up on every view", anon, nil, 200, 2, "Atrium"},
				{"a view after the next login", anon, login(anon), 200, 3, "Atrium"},
				{"trusted again", anon, nil, 200, 1, "Atrium"},

				{"deleted elsewhere: gone within RecentChannelAge", anon, later(store.RecentChannelAge, func() {
					if err := b.Store.DeleteChannel(ctx, ch.ID); err != nil {
						t.Fatal(err)
					}
				}), 404, 3, ""}, // session, client, channel
			}
			for _, st := range steps {
				if st.before != nil {
					st.before()
				}
				q := b.Store.Queries()
				r := st.br.get("/c/" + ch.ID)
				q = b.Store.Queries() - q
				if r.status != st.status || q != st.queries {
					t.Errorf("%s: status %d after %d queries, want %d after %d", st.name, r.status, q, st.status, st.queries)
				}
				if r.status != http.StatusOK {
					continue
				}
				cfg := parseConfig(t, r.body)
				if old, ok := clients[st.br]; ok && cfg.ClientID != old {
					t.Errorf("%s: client %s, want %s", st.name, cfg.ClientID, old)
				}
				clients[st.br] = cfg.ClientID
				if cfg.Topic != st.topic || !strings.Contains(r.body, "<h1>"+st.topic+"</h1>") {
					t.Errorf("%s: topic %q, want %q", st.name, cfg.Topic, st.topic)
				}
			}
		})
	}
}

package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"channels/internal/config"
	"channels/internal/metrics"
	"channels/internal/store"
	"channels/internal/store/storetest"
	"channels/internal/webclient"
)

// fullSite is a server whose ceiling of stored clients is 3, and the three
// cookieless visitors of its Lobby who filled it.
type fullSite struct {
	*site
	b       storetest.Backend
	lobby   store.Channel
	cookies []string // the visitors' session cookies
	clients []string // and their client ids
}

// newFullSite fills a server with a ceiling of 3 stored clients: three
// visitors from addresses of their own each get a client and a session.
// Each address may make one client an hour, so a refusal that cost the
// budget shows as a 429 on the next try (and a visitor's new client takes
// an address of its own).
func newFullSite(t *testing.T, b storetest.Backend) *fullSite {
	t.Helper()
	s := newSite(t, b.Store, nil)
	s.freezeClock()
	s.srv.stored.max = 3
	s.srv.newClients = newLimiter(1, time.Hour, maxTracked)
	f := &fullSite{site: s, b: b, lobby: s.channel("Lobby", true, 0)}
	for i := range 3 {
		w := getFrom(s, fmt.Sprintf("192.0.2.%d:4000", i+1), "/c/"+f.lobby.ID, "")
		if w.Code != http.StatusOK {
			t.Fatalf("visitor %d: status %d, want 200", i+1, w.Code)
		}
		f.cookies = append(f.cookies, sessionCookieOf(s, w))
		f.clients = append(f.clients, parseConfig(t, w.Body.String()).ClientID)
	}
	f.rows(t, "filled", 3, 3)
	return f
}

// rows checks the clients and sessions the database holds.
func (f *fullSite) rows(t *testing.T, when string, clients, sessions int) {
	t.Helper()
	if c, s := countRows(t, f.b, "clients"), countRows(t, f.b, "sessions"); c != clients || s != sessions {
		t.Fatalf("%s: %d clients and %d sessions stored, want %d and %d", when, c, s, clients, sessions)
	}
}

// checkRefused checks that w is the ceiling's 503: the message, a
// Retry-After, no session cookie.
func checkRefused(t *testing.T, s *site, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", w.Code)
	}
	if !strings.Contains(w.Body.String(), storedMessage) {
		t.Fatalf("503 page lacks %q:\n%s", storedMessage, w.Body)
	}
	if ra := w.Header().Get("Retry-After"); ra != "60" {
		t.Fatalf("Retry-After = %q, want 60 (the next count)", ra)
	}
	if c := sessionCookieOf(s, w); c != "" {
		t.Fatal("a refused view got a session cookie")
	}
}

// viewOf returns a channel page view's status and, for a page, the
// client it hands out.
func viewOf(t *testing.T, w *httptest.ResponseRecorder) (int, string) {
	t.Helper()
	if w.Code != http.StatusOK {
		return w.Code, ""
	}
	return w.Code, parseConfig(t, w.Body.String()).ClientID
}

var storedLogRE = regexp.MustCompile(`(?m)^.* level=WARN msg="stored clients at the ceiling: new visitors refused" .*$`)

// TestStoredClientCeiling: with the ceiling at 3, three new visitors get
// clients; a fourth is refused with a 503 that writes nothing (no client,
// no session, no budget spent), counted in the metrics and logged at WARN
// once a minute at most, without the visitor's address; the count is
// cached, so rows the sweeper deletes let newcomers in at the next count,
// a minute on. (Before: every new visitor got a client and a session,
// however many were stored.)
func TestStoredClientCeiling(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFullSite(t, b)
			logs, scrape := withMetrics(t, f.site)
			const newcomer = "198.51.100.7:4000"
			path := "/c/" + f.lobby.ID

			for i := range 2 {
				w := getFrom(f.site, newcomer, path, "")
				checkRefused(t, f.site, w)
				f.rows(t, fmt.Sprintf("refusal %d", i+1), 3, 3)
			}
			if got := scrape().Sum("channels_web_rate_limited_total", "limit", metrics.LimitStoredClients); got != 2 {
				t.Errorf("channels_web_rate_limited_total{limit=stored_clients} = %v, want 2", got)
			}
			lines := storedLogRE.FindAllString(logs.String(), -1)
			if len(lines) != 1 || !strings.Contains(lines[0], "clients=3 sessions=3 max=3 refused=1") {
				t.Fatalf("want one WARN line for two refusals within a minute, counting 3 of 3 stored:\n%s", logs)
			}
			if strings.Contains(lines[0], "client=") || strings.Contains(lines[0], "198.51.100.7") {
				t.Errorf("the line names the refused visitor, whom fail2ban must not see: %s", lines[0])
			}

			// The first visitor reloading still gets its page and client.
			w := getFrom(f.site, "192.0.2.1:4000", path, f.cookies[0])
			if w.Code != http.StatusOK || parseConfig(t, w.Body.String()).ClientID != f.clients[0] {
				t.Fatalf("returning visitor at the ceiling: status %d", w.Code)
			}

			// A minute on, the count is read again (still full): one more
			// line, counting the refusals since the last.
			f.advance(storedCountAge)
			w = getFrom(f.site, newcomer, path, "")
			checkRefused(t, f.site, w)
			if lines := storedLogRE.FindAllString(logs.String(), -1); len(lines) != 2 || !strings.Contains(lines[1], "refused=2") {
				t.Fatalf("want a second WARN line a minute on, counting the refusal it left out and its own:\n%s", logs)
			}

			// The sweeper deletes the clients (they never logged in) and,
			// a day on, their provisional sessions. The count is a minute
			// old at most: newcomers get in at the next.
			res, err := b.Store.Sweep(t.Context(), store.SweepRules{Now: f.srv.now().Add(25 * time.Hour), NeverLoggedIn: time.Hour})
			if err != nil || res.Clients != 3 || res.Sessions != 3 {
				t.Fatalf("Sweep = %+v, %v; want 3 clients and 3 sessions", res, err)
			}
			w = getFrom(f.site, newcomer, path, "")
			checkRefused(t, f.site, w)
			f.advance(storedCountAge)
			w = getFrom(f.site, newcomer, path, "")
			if w.Code != http.StatusOK {
				t.Fatalf("newcomer after the sweep and a count: status %d, want 200 (its refusals must not have spent its budget)", w.Code)
			}
			f.rows(t, "after the newcomer", 1, 1)
		})
	}
}

// TestStoredClientCeilingSpares: at the ceiling, who still gets in. A
// visitor whose session names its client is never refused, even when the
// sweeper deleted the client (the session re-creates it), nor is a
// signed-in user; a new client for an existing session (another channel)
// is refused only while the clients are at the ceiling, a new session
// also while the sessions are.
func TestStoredClientCeilingSpares(t *testing.T) {
	tests := []struct {
		name string
		// view makes the view under test on the full site and returns
		// its status and client id.
		view       func(t *testing.T, f *fullSite) (int, string)
		wantStatus int
		// wantClient is the index of the visitor whose client the view
		// must get, or -1 for a client of its own (or none).
		wantClient int
		clients    int // rows after the view
		sessions   int
	}{
		{"returning visitor", func(t *testing.T, f *fullSite) (int, string) {
			return viewOf(t, getFrom(f.site, "192.0.2.2:4000", "/c/"+f.lobby.ID, f.cookies[1]))
		}, http.StatusOK, 1, 3, 3},

		{"returning visitor from another address", func(t *testing.T, f *fullSite) (int, string) {
			return viewOf(t, getFrom(f.site, "203.0.113.9:4000", "/c/"+f.lobby.ID, f.cookies[2]))
		}, http.StatusOK, 2, 3, 3},

		{"swept client re-created", func(t *testing.T, f *fullSite) (int, string) {
			db, ph := openDB(t, f.b)
			if _, err := db.ExecContext(t.Context(), `DELETE FROM clients WHERE id = `+ph, f.clients[0]); err != nil {
				t.Fatal(err)
			}
			// The count still says 3: a new client would be refused.
			return viewOf(t, getFrom(f.site, "192.0.2.1:4000", "/c/"+f.lobby.ID, f.cookies[0]))
		}, http.StatusOK, 0, 3, 3},

		{"signed-in user", func(t *testing.T, f *fullSite) (int, string) {
			f.user("alice", "alice's password", false)
			a := f.browser()
			a.signIn("alice", "alice's password")
			r := a.get("/c/" + f.lobby.ID)
			if r.status != http.StatusOK {
				return r.status, ""
			}
			return r.status, parseConfig(t, r.body).ClientID
		}, http.StatusOK, -1, 4, 4},

		{"returning visitor in another channel", func(t *testing.T, f *fullSite) (int, string) {
			other := f.channel("Other", true, 0)
			w := getFrom(f.site, "203.0.113.9:4000", "/c/"+other.ID, f.cookies[0])
			checkRefused(t, f.site, w)
			return w.Code, ""
		}, http.StatusServiceUnavailable, -1, 3, 3},

		{"another channel, sessions full, clients not", func(t *testing.T, f *fullSite) (int, string) {
			db, ph := openDB(t, f.b)
			if _, err := db.ExecContext(t.Context(), `DELETE FROM clients WHERE id = `+ph, f.clients[1]); err != nil {
				t.Fatal(err)
			}
			f.advance(storedCountAge)
			// A newcomer needs a session too: refused.
			w := getFrom(f.site, "198.51.100.7:4000", "/c/"+f.lobby.ID, "")
			checkRefused(t, f.site, w)
			// A visitor with a session needs only a client.
			other := f.channel("Other", true, 0)
			return viewOf(t, getFrom(f.site, "203.0.113.9:4000", "/c/"+other.ID, f.cookies[0]))
		}, http.StatusOK, -1, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, b := range storetest.Stores(t) {
				t.Run(b.Name, func(t *testing.T) {
					f := newFullSite(t, b)
					status, client := tt.view(t, f)
					if status != tt.wantStatus {
						t.Fatalf("status %d, want %d", status, tt.wantStatus)
					}
					if tt.wantClient >= 0 && client != f.clients[tt.wantClient] {
						t.Errorf("client %q, want visitor %d's %q", client, tt.wantClient+1, f.clients[tt.wantClient])
					}
					if tt.wantClient < 0 && status == http.StatusOK && (client == "" || slices.Contains(f.clients, client)) {
						t.Errorf("client %q, want a new one", client)
					}
					f.rows(t, "after the view", tt.clients, tt.sessions)
				})
			}
		})
	}
}

// TestMaxStoredClientsOption: Options.MaxStoredClients sets the ceiling;
// zero or less means DefaultMaxStoredClients, which is -max-stored-clients's
// default.
func TestMaxStoredClientsOption(t *testing.T) {
	st := storetest.SQLite(t).Store
	assets, err := webclient.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ option, want int }{
		{0, DefaultMaxStoredClients},
		{-1, DefaultMaxStoredClients},
		{7, 7},
	} {
		srv, err := New(Options{Config: config.Default(), Store: st, Assets: assets, MaxStoredClients: tt.option})
		if err != nil {
			t.Fatal(err)
		}
		if srv.stored.max != int64(tt.want) {
			t.Errorf("MaxStoredClients %d: ceiling %d, want %d", tt.option, srv.stored.max, tt.want)
		}
	}
	if DefaultMaxStoredClients != config.Default().MaxStoredClients {
		t.Errorf("DefaultMaxStoredClients %d, the flag's default %d", DefaultMaxStoredClients, config.Default().MaxStoredClients)
	}
}

package web

import (
	"database/sql"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// openDB opens the backend's database through a connection of the test's
// own, and says how its queries write the first placeholder.
func openDB(t testing.TB, b storetest.Backend) (db *sql.DB, placeholder string) {
	t.Helper()
	driver, dsn, placeholder := "sqlite", "file:"+b.URL, "?"
	if b.Name == "postgres" {
		driver, dsn, placeholder = "pgx", b.URL, "$1"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, placeholder
}

// countRows counts a table's rows in the backend's database.
func countRows(t testing.TB, b storetest.Backend, table string) int {
	t.Helper()
	db, _ := openDB(t, b)
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// getFrom requests path from the given remote address, with an optional
// session cookie, straight through the handler.
func getFrom(s *site, addr, path, cookie string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = addr
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: s.srv.sessions.Cookie.Name, Value: cookie})
	}
	w := httptest.NewRecorder()
	s.srv.ServeHTTP(w, r)
	return w
}

func sessionCookieOf(s *site, w *httptest.ResponseRecorder) string {
	for _, c := range w.Result().Cookies() {
		if c.Name == s.srv.sessions.Cookie.Name {
			return c.Value
		}
	}
	return ""
}

// TestNewClientBudget: cookieless channel page views from one address make
// at most the budget's clients and sessions (before: every view made one of
// each); over it the page is a 429 with Retry-After and stores nothing;
// returning browsers and other addresses are not affected.
func TestNewClientBudget(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := newSite(t, b.Store, nil)
			s.freezeClock()
			s.srv.newClients = newLimiter(DefaultNewClientBurst, DefaultNewClientEvery, maxTracked)
			ch := s.channel("Lobby", true, 0)
			const attacker, views = "192.0.2.7:4000", 3 * DefaultNewClientBurst
			clients0, sessions0 := countRows(t, b, "clients"), countRows(t, b, "sessions")

			var first string
			ok, limited := 0, 0
			for range views {
				w := getFrom(s, attacker, "/c/"+ch.ID, "")
				switch w.Code {
				case http.StatusOK:
					ok++
					if first == "" {
						first = sessionCookieOf(s, w)
					}
				case http.StatusTooManyRequests:
					limited++
					if ra := w.Header().Get("Retry-After"); ra != "10" {
						t.Fatalf("Retry-After = %q, want 10", ra)
					}
					if c := sessionCookieOf(s, w); c != "" {
						t.Fatal("a limited view got a session cookie")
					}
					if !strings.Contains(w.Body.String(), "Too many new visits") {
						t.Fatalf("429 page: %s", w.Body.String())
					}
				default:
					t.Fatalf("view: status %d", w.Code)
				}
			}
			clients := countRows(t, b, "clients") - clients0
			sessions := countRows(t, b, "sessions") - sessions0
			t.Logf("%d cookieless views: %d pages, %d limited; %d clients and %d sessions stored", views, ok, limited, clients, sessions)
			if ok != DefaultNewClientBurst || clients != DefaultNewClientBurst || sessions != DefaultNewClientBurst {
				t.Fatalf("%d cookieless views from one address: %d pages, %d clients, %d sessions; want %d of each",
					views, ok, clients, sessions, DefaultNewClientBurst)
			}

			// A browser that has its client keeps getting it.
			if w := getFrom(s, attacker, "/c/"+ch.ID, first); w.Code != http.StatusOK {
				t.Errorf("returning browser over budget: status %d", w.Code)
			}
			// Another address has its own budget.
			if w := getFrom(s, "198.51.100.9:4000", "/c/"+ch.ID, ""); w.Code != http.StatusOK {
				t.Errorf("another address: status %d", w.Code)
			}
			// The budget refills: one more per interval.
			s.advance(DefaultNewClientEvery)
			if w := getFrom(s, attacker, "/c/"+ch.ID, ""); w.Code != http.StatusOK {
				t.Errorf("after %v: status %d", DefaultNewClientEvery, w.Code)
			}
			if w := getFrom(s, attacker, "/c/"+ch.ID, ""); w.Code != http.StatusTooManyRequests {
				t.Errorf("second view after %v: status %d", DefaultNewClientEvery, w.Code)
			}
		})
	}
}

// TestSweptClientComesBack: the sweeper deletes clients that never logged
// in, yet a browser that keeps its session keeps its client id: the page
// re-creates the client from the session, without spending the budget.
// Clients that logged in are not swept.
func TestSweptClientComesBack(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := newSite(t, b.Store, nil)
			s.freezeClock()
			s.srv.newClients = newLimiter(2, time.Hour, maxTracked)
			ch := s.channel("Lobby", true, 0)
			idle, online := s.browser(), s.browser()
			before := idle.channelPage(ch.ID)
			on := online.channelPage(ch.ID)
			if err := s.store.SetClientConnected(t.Context(), on.ClientID, time.Now()); err != nil {
				t.Fatal(err)
			}
			// The budget of 2 is spent: no new client can be made now.
			if r := s.browser().get("/c/" + ch.ID); r.status != http.StatusTooManyRequests {
				t.Fatalf("third new browser: status %d, want 429", r.status)
			}

			res, err := s.store.Sweep(t.Context(), store.SweepRules{Now: time.Now().Add(2 * time.Hour), NeverLoggedIn: time.Hour})
			if err != nil || res.Clients != 1 {
				t.Fatalf("Sweep = %+v, %v; want 1 client deleted", res, err)
			}
			if _, err := s.store.ClientByID(t.Context(), before.ClientID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("never-connected client after sweep: %v", err)
			}
			if _, err := s.store.ClientByID(t.Context(), on.ClientID); err != nil {
				t.Fatalf("connected client after sweep: %v", err)
			}

			after := idle.channelPage(ch.ID)
			if after.ClientID != before.ClientID || after.Password != before.Password {
				t.Fatalf("after a sweep the browser got client %s, want %s (same password: %v)",
					after.ClientID, before.ClientID, after.Password == before.Password)
			}
			if c, err := s.store.ClientByID(t.Context(), before.ClientID); err != nil || c.Password != before.Password || c.ChannelID != ch.ID {
				t.Fatalf("re-created client = %+v, %v", c, err)
			}
			if again := online.channelPage(ch.ID); again.ClientID != on.ClientID {
				t.Errorf("connected browser: client %s, want %s", again.ClientID, on.ClientID)
			}
		})
	}
}

var floodViews = flag.Int("flood", 0, "TestClientFlood: cookieless channel page views from one address (0 skips)")

// TestClientFlood measures what cookieless page views from one address
// leave in a SQLite database, and what a sweep leaves: go test
// ./internal/web -run ClientFlood -flood 2000 -v.
func TestClientFlood(t *testing.T) {
	if *floodViews == 0 {
		t.Skip("set -flood N to run")
	}
	b := storetest.SQLite(t)
	s := newSite(t, b.Store, nil)
	s.srv.newClients = newLimiter(DefaultNewClientBurst, DefaultNewClientEvery, maxTracked)
	ch := s.channel("Lobby", true, 0)
	wal := func() int64 {
		fi, err := os.Stat(b.URL + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	start := time.Now()
	codes := map[int]int{}
	for range *floodViews {
		codes[getFrom(s, "192.0.2.7:4000", "/c/"+ch.ID, "").Code]++
	}
	t.Logf("%d views in %v: statuses %v; clients %d, sessions %d, WAL %d bytes",
		*floodViews, time.Since(start).Round(time.Millisecond), codes,
		countRows(t, b, "clients"), countRows(t, b, "sessions"), wal())
	res, err := b.Store.Sweep(t.Context(), store.SweepRules{Now: time.Now().Add(2 * time.Hour), NeverLoggedIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sweep 2 h later: %+v; clients %d, sessions %d, WAL %d bytes",
		res, countRows(t, b, "clients"), countRows(t, b, "sessions"), wal())
}

// sessionExpiry reads the expiry of the session behind cookie.
func sessionExpiry(t testing.TB, b storetest.Backend, cookie string) time.Time {
	t.Helper()
	db, ph := openDB(t, b)
	var micros int64
	if err := db.QueryRowContext(t.Context(), `SELECT expiry FROM sessions WHERE token = `+ph, cookie).Scan(&micros); err != nil {
		t.Fatalf("session %s: %v", cookie, err)
	}
	return time.UnixMicro(micros)
}

// TestProvisionalSession: the session a cookieless channel view creates
// expires in a day, so a visitor who never calls leaves no long-lived row;
// once its client has logged in, the next view gives it the full lifetime.
func TestProvisionalSession(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := newSite(t, b.Store, nil)
			ch := s.channel("Lobby", true, 0)
			w := getFrom(s, "192.0.2.8:4000", "/c/"+ch.ID, "")
			cookie := sessionCookieOf(s, w)
			if w.Code != http.StatusOK || cookie == "" {
				t.Fatalf("first view: %d, cookie %q", w.Code, cookie)
			}
			within := func(what string, got, want time.Time) {
				t.Helper()
				if d := got.Sub(want); d < -time.Minute || d > time.Minute {
					t.Fatalf("%s: session expires %v, want about %v", what, got, want)
				}
			}
			within("new visitor", sessionExpiry(t, b, cookie), time.Now().Add(provisionalLifetime))

			getFrom(s, "192.0.2.8:4000", "/c/"+ch.ID, cookie) // no login yet: unchanged
			within("before a login", sessionExpiry(t, b, cookie), time.Now().Add(provisionalLifetime))

			var clientID string
			for _, c := range clientsOf(t, b, ch.ID) {
				clientID = c
			}
			if err := b.Store.ClientLoggedIn(t.Context(), clientID, "192.0.2.8:5000", time.Now()); err != nil {
				t.Fatal(err)
			}
			getFrom(s, "192.0.2.8:4000", "/c/"+ch.ID, cookie)
			within("after a login", sessionExpiry(t, b, cookie), time.Now().Add(s.srv.sessions.Lifetime))
		})
	}
}

// clientsOf lists the ids of a channel's clients.
func clientsOf(t testing.TB, b storetest.Backend, channelID string) []string {
	t.Helper()
	db, ph := openDB(t, b)
	rows, err := db.QueryContext(t.Context(), `SELECT id FROM clients WHERE channel_id = `+ph, channelID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

package web

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"channels/internal/config"
	"channels/internal/store"
	"channels/internal/store/storetest"
	"channels/internal/turn"
)

const iceTestSecret = "a-test-secret-of-32-characters!!"

// turnSite is a site minting time-limited TURN credentials by a frozen
// clock, with a static STUN server beside them; its log is kept.
func turnSite(t *testing.T, edit func(*config.Config)) (*site, *bytes.Buffer) {
	t.Helper()
	s := newSite(t, storetest.SQLite(t).Store, func(c *config.Config) {
		c.ICEServers = []config.ICEServer{{URLs: []string{"stun:stun.example:3478"}}}
		c.TURNSecret = iceTestSecret
		c.TURNURLs = []string{"turn:turn.example:3478", "turns:turn.example:5349"}
		c.TURNTTL = 2 * time.Hour
		if edit != nil {
			edit(c)
		}
	})
	// Whole seconds, so expiries are the clock plus the lifetime; and
	// today, as sessions expire by the real clock.
	s.clock = time.Now().Truncate(time.Second)
	s.freezeClock()
	var logs bytes.Buffer
	s.srv.log = slog.New(slog.NewTextHandler(&logs, nil))
	return s, &logs
}

// checkTURN checks that servers are the static STUN server and TURN
// credentials for clientID expiring at exp, as coturn computes them.
func checkTURN(t *testing.T, servers []config.ICEServer, clientID string, exp int64) {
	t.Helper()
	if len(servers) != 2 || len(servers[0].URLs) != 1 || servers[0].URLs[0] != "stun:stun.example:3478" || servers[0].Username != "" {
		t.Fatalf("servers %+v: want the STUN server, then TURN", servers)
	}
	tr := servers[1]
	if strings.Join(tr.URLs, ",") != "turn:turn.example:3478,turns:turn.example:5349" {
		t.Errorf("TURN URLs %q", tr.URLs)
	}
	if want := strconv.FormatInt(exp, 10) + ":" + clientID; tr.Username != want {
		t.Errorf("TURN username %q, want %q", tr.Username, want)
	}
	if want := turn.Password([]byte(iceTestSecret), tr.Username); tr.Credential != want {
		t.Errorf("TURN credential %q, want %q", tr.Credential, want)
	}
}

func TestChannelPageICE(t *testing.T) {
	t.Run("static servers only", func(t *testing.T) {
		s := newSite(t, storetest.SQLite(t).Store, func(c *config.Config) {
			c.ICEServers = []config.ICEServer{{URLs: []string{"turn:turn.example:3478"}, Username: "u", Credential: "p"}}
		})
		ch := s.channel("Static", true, 0)
		b := s.browser()
		c := parseConfig(t, b.get("/c/"+ch.ID).body)
		if c.ICEExpires != 0 || c.ICETTL != 0 || c.ICEURL != "" || c.ICETransportPolicy != "all" || len(c.ICEServers) != 1 || c.ICEServers[0].Username != "u" {
			t.Errorf("config %+v: want the static server, never expiring, policy all", c)
		}
		// Nothing expires, so there is nothing to renew.
		if r := b.get("/c/" + ch.ID + "/ice"); r.status != http.StatusNotFound {
			t.Errorf("GET ice: status %d, want 404", r.status)
		}
	})

	t.Run("time-limited TURN, relay only", func(t *testing.T) {
		s, logs := turnSite(t, func(c *config.Config) { c.ICERelayOnly = true })
		ch := s.channel("TURN", true, 0)
		r := s.browser().get("/c/" + ch.ID)
		c := parseConfig(t, r.body)
		exp := turn.Expiry(s.clock, 2*time.Hour).Unix()
		if c.ICEExpires != exp || c.ICEURL != "/c/"+ch.ID+"/ice" || c.ICETransportPolicy != "relay" {
			t.Errorf("iceExpires %d (want %d), iceUrl %q, policy %q", c.ICEExpires, exp, c.ICEURL, c.ICETransportPolicy)
		}
		if want := exp - s.clock.Unix(); c.ICETTL != want || want < 2*3600 {
			t.Errorf("iceTtl %d, want %d (at least the lifetime): the whole lifetime is left", c.ICETTL, want)
		}
		checkTURN(t, c.ICEServers, c.ClientID, exp)
		if strings.Contains(r.body, iceTestSecret) || strings.Contains(logs.String(), iceTestSecret) {
			t.Errorf("the TURN secret is in the page or the log")
		}
	})
}

func TestChannelICERenewal(t *testing.T) {
	s, logs := turnSite(t, nil)
	ch := s.channel("Renew", true, 0)
	other := s.channel("Other", true, 0)
	alice := s.browser()
	page := parseConfig(t, alice.get("/c/"+ch.ID).body)
	alice.get("/c/" + other.ID) // a client in another channel too

	s.advance(90 * time.Minute)
	r := alice.get(page.ICEURL)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", page.ICEURL, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("renewal set cookies %q: it must not touch the session", sc)
	}
	var got iceAnswer
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	exp := turn.Expiry(s.clock, 2*time.Hour).Unix()
	if got.ICEExpires != exp || got.ICEExpires <= page.ICEExpires {
		t.Errorf("renewed iceExpires %d, want %d (the page's: %d)", got.ICEExpires, exp, page.ICEExpires)
	}
	checkTURN(t, got.ICEServers, page.ClientID, exp)
	if want := exp - s.clock.Unix(); got.ICETTL != want {
		t.Errorf("renewed iceTtl %d, want %d", got.ICETTL, want)
	}

	// Only the browser holding a client in that very channel gets any.
	stranger := s.browser()
	for _, tc := range []struct {
		name string
		b    *browser
		path string
		want int
	}{
		{"no session", stranger, page.ICEURL, http.StatusForbidden},
		{"client in another channel only", alice, "/c/" + s.channel("Third", true, 0).ID + "/ice", http.StatusForbidden},
		{"malformed channel id", alice, "/c/nope/ice", http.StatusNotFound},
		{"POST", alice, page.ICEURL, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r response
			if tc.name == "POST" {
				r = tc.b.post(tc.path, nil)
			} else {
				r = tc.b.get(tc.path)
			}
			if r.status != tc.want {
				t.Errorf("status %d, want %d", r.status, tc.want)
			}
			if strings.Contains(r.body, "turn.example") {
				t.Errorf("refused request got TURN servers: %s", r.body)
			}
			if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("set cookies %q", sc)
			}
		})
	}

	// A deleted channel's clients get no more credentials.
	if err := s.store.DeleteChannel(t.Context(), ch.ID); err != nil {
		t.Fatal(err)
	}
	if r := alice.get(page.ICEURL); r.status != http.StatusForbidden {
		t.Errorf("after the channel was deleted: status %d, want 403", r.status)
	}
	if strings.Contains(logs.String(), iceTestSecret) {
		t.Errorf("the TURN secret is in the log:\n%s", logs)
	}
}

// Renewals are paid from a budget per address, refused ones included.
func TestChannelICERateLimit(t *testing.T) {
	s, logs := turnSite(t, nil)
	ch := s.channel("Budget", true, 0)
	alice := s.browser()
	url := parseConfig(t, alice.get("/c/"+ch.ID).body).ICEURL
	// A browser without the session (another site's image or fetch sends
	// none) is refused before the budget: it cannot spend alice's.
	stranger := s.browser()
	for i := range iceRenewBurst {
		if r := stranger.get(url); r.status != http.StatusForbidden {
			t.Fatalf("sessionless request %d: status %d, want 403", i+1, r.status)
		}
		if r := alice.get(url); r.status != http.StatusOK {
			t.Fatalf("request %d of the burst: status %d, want 200", i+1, r.status)
		}
	}
	r := alice.get(url)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("request past the burst: status %d, want 429", r.status)
	}
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 || ra > int(iceRenewEvery/time.Second) {
		t.Errorf("Retry-After %q, want 1…%d", r.header.Get("Retry-After"), int(iceRenewEvery/time.Second))
	}
	if strings.Contains(r.body, "turn.example") {
		t.Errorf("a refused renewal got TURN servers")
	}
	if !strings.Contains(logs.String(), "TURN credential renewals rate limited") {
		t.Errorf("the refusal is not logged:\n%s", logs)
	}
	s.advance(iceRenewEvery)
	if r := alice.get(url); r.status != http.StatusOK {
		t.Errorf("after %v: status %d, want 200", iceRenewEvery, r.status)
	}
	if r := alice.get(url); r.status != http.StatusTooManyRequests {
		t.Errorf("second request after %v: status %d, want 429", iceRenewEvery, r.status)
	}
}

// iceTtl is the time left by the server's clock, in whole seconds rounded
// down, whatever the clock of the browser that counts from it says.
func TestICETTL(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		answers time.Duration // after the whole second the credentials were minted at
		want    int64
	}{
		// 03:04:05 + 1 h, rounded up to the half hour: 04:30:00.
		{"answered at once", time.Hour, 0, 5155},
		{"answered within the second", time.Hour, 999 * time.Millisecond, 5154},
		{"a lifetime of a second", time.Second, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := at
			cfg := config.Config{TURNSecret: iceTestSecret, TURNURLs: []string{"turn:turn.example:3478"}, TURNTTL: tc.ttl}
			src, err := newICE(cfg, func() time.Time { n := now; now = now.Add(tc.answers); return n })
			if err != nil {
				t.Fatal(err)
			}
			a, err := src.forClient("c")
			if err != nil {
				t.Fatal(err)
			}
			if exp := turn.Expiry(at, tc.ttl).Unix(); a.ICETTL != tc.want || a.ICEExpires != exp {
				t.Errorf("iceTtl %d, iceExpires %d; want %d, %d", a.ICETTL, a.ICEExpires, tc.want, exp)
			}
		})
	}
}

// TestChannelICERefused: a client the channel page refuses — removed, or
// kept out by the lock — gets no renewed credentials either, but the
// page's 403; the members the lock admits and the managers still do.
func TestChannelICERefused(t *testing.T) {
	s, _ := turnSite(t, nil)
	s.store.SetClock(s.srv.now)
	u := s.user("olga", "olga's password", false)
	ch := s.channel("Moderated", true, u.ID)
	owner := s.browser()
	owner.signIn("olga", "olga's password")
	ownerPage := owner.channelPage(ch.ID)
	member := func(connected bool) (*browser, string) {
		b := s.browser()
		id := b.channelPage(ch.ID).ClientID
		if connected {
			if err := s.store.ClientLoggedIn(t.Context(), id, "192.0.2.1:5000", s.srv.now()); err != nil {
				t.Fatal(err)
			}
		}
		return b, id
	}
	removed, rid := member(true)
	present, _ := member(true)
	absent, _ := member(false)
	s.advance(store.LockPresence)
	if r := owner.post("/c/"+ch.ID+"/remove", url.Values{"client": {rid}}); r.status != 200 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	if r := owner.post("/c/"+ch.ID+"/lock", url.Values{"locked": {"1"}}); r.status != 200 {
		t.Fatalf("lock: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name   string
		b      *browser
		status int
		says   string
	}{
		{"removed", removed, http.StatusForbidden, "You were removed from this channel"},
		{"absent at the lock", absent, http.StatusForbidden, "This channel is locked"},
		{"present at the lock", present, http.StatusOK, ""},
		{"owner", owner, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.b.get(ownerPage.ICEURL)
			if r.status != tc.status || !strings.Contains(r.body, tc.says) {
				t.Errorf("status %d, want %d saying %q: %s", r.status, tc.status, tc.says, r.body)
			}
			if tc.status != http.StatusOK && strings.Contains(r.body, "turn.example") {
				t.Errorf("refused client got TURN servers: %s", r.body)
			}
		})
	}
}

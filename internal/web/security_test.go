package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"channels/internal/store/storetest"
)

// TestCrossOriginRefused: state-changing requests from another site are
// refused, whichever way the browser tells.
func TestCrossOriginRefused(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	owner := s.user("owner", "owner password", false)
	ch := s.channel("Lobby", true, owner.ID)
	tests := []struct {
		name, path, body string
		headers          map[string]string
		want             int
	}{
		{"create cross-site", "/channels", "topic=evil", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"create same-site other origin", "/channels", "topic=evil", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"create foreign Origin", "/channels", "topic=evil", map[string]string{"Origin": "http://evil.example"}, 403},
		{"update cross-site", "/c/" + ch.ID + "/edit", "topic=evil", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, 403},
		{"delete cross-site", "/c/" + ch.ID + "/delete", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"sign-out cross-site", "/signout", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"sign-in cross-site", "/signin", "name=owner&password=owner+password", map[string]string{"Origin": "http://evil.example"}, 403},
		{"update same-origin", "/c/" + ch.ID + "/edit", "topic=Renamed&public=on", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": s.ts.URL}, 303},
		{"update without browser headers", "/c/" + ch.ID + "/edit", "topic=Lobby&public=on", nil, 303},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := s.browser()
			b.t = t
			b.signIn("owner", "owner password")
			req, err := http.NewRequest(http.MethodPost, s.ts.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			r := b.do(req)
			if r.status != tt.want {
				t.Errorf("status %d, want %d\n%s", r.status, tt.want, r.body)
			}
			if tt.want == 403 && !strings.Contains(r.body, "another site") {
				t.Errorf("no explanation in the 403 page:\n%s", r.body)
			}
		})
	}
	chans, err := s.store.Channels(t.Context())
	if err != nil || len(chans) != 1 || chans[0].Topic != "Lobby" {
		t.Errorf("channels after cross-site attempts: %+v, %v", chans, err)
	}
}

// TestPermissions: owners manage their own channels, administrators all,
// others none — on every database.
func TestPermissions(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := newSite(t, b.Store, nil)
			bob := s.user("bob", "bob password", false)
			s.user("carol", "carol password", false)
			s.user("root", "root password", true)
			lobby := s.channel("Lobby", true, 0)
			bobs := s.channel("Bob's", false, bob.ID)

			tests := []struct {
				user    string
				channel string
				want    int // for edit page, update and delete
			}{
				{"bob", bobs.ID, 303},
				{"carol", bobs.ID, 403},
				{"root", bobs.ID, 303},
				{"bob", lobby.ID, 403},
				{"carol", lobby.ID, 403},
				{"root", lobby.ID, 303},
			}
			for _, tt := range tests {
				t.Run(tt.user+"/"+tt.channel[:8], func(t *testing.T) {
					br := s.browser()
					br.t = t
					br.signIn(tt.user, tt.user+" password")
					wantPage := 200
					if tt.want != 303 {
						wantPage = tt.want
					}
					for _, p := range []string{"/edit", "/delete"} {
						if r := br.get("/c/" + tt.channel + p); r.status != wantPage {
							t.Errorf("GET %s: %d, want %d", p, r.status, wantPage)
						}
					}
					page := br.get("/c/" + tt.channel)
					if shown := strings.Contains(page.body, "/edit\""); shown != (tt.want == 303) {
						t.Errorf("channel page shows edit link: %v", shown)
					}
					r := br.post("/c/"+tt.channel+"/edit", url.Values{"topic": {"By " + tt.user}})
					if r.status != tt.want {
						t.Errorf("update: %d, want %d", r.status, tt.want)
					}
					ch, err := s.store.ChannelByID(t.Context(), tt.channel)
					if err != nil {
						t.Fatal(err)
					}
					if changed := ch.Topic == "By "+tt.user; changed != (tt.want == 303) {
						t.Errorf("topic now %q", ch.Topic)
					}
				})
			}

			// Deletion last: it removes the channels.
			for _, tt := range []struct {
				user, channel string
				want          int
			}{{"carol", bobs.ID, 403}, {"bob", lobby.ID, 403}, {"bob", bobs.ID, 303}, {"root", lobby.ID, 303}} {
				br := s.browser()
				br.t = t
				br.signIn(tt.user, tt.user+" password")
				if r := br.post("/c/"+tt.channel+"/delete", nil); r.status != tt.want {
					t.Errorf("%s deletes %s: %d, want %d", tt.user, tt.channel, r.status, tt.want)
				}
				_, err := s.store.ChannelByID(t.Context(), tt.channel)
				if gone := err != nil; gone != (tt.want == 303) {
					t.Errorf("%s deletes %s: gone %v (%v)", tt.user, tt.channel, gone, err)
				}
			}
			if r := s.browser().get("/c/" + bobs.ID); r.status != 404 {
				t.Errorf("deleted channel page: %d, want 404", r.status)
			}
		})
	}
}

// TestCreateAndManageList: a signed-in user creates a private channel; it
// is not on the index, is on their management list, and not on another
// user's; an administrator sees all.
func TestCreateAndManageList(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	s.user("bob", "bob password", false)
	s.user("carol", "carol password", false)
	s.user("root", "root password", true)
	s.channel("Lobby", true, 0)

	bob := s.browser()
	bob.signIn("bob", "bob password")
	r := bob.post("/channels", url.Values{"topic": {"Bob's private room"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/c/") {
		t.Fatalf("create: %d %q", r.status, r.header.Get("Location"))
	}
	id := strings.TrimPrefix(r.header.Get("Location"), "/c/")
	if cfg := bob.channelPage(id); cfg.Topic != "Bob's private room" {
		t.Errorf("new channel page: %+v", cfg)
	}
	if body := s.browser().get("/").body; strings.Contains(body, "Bob&#39;s private room") || !strings.Contains(body, "Lobby") {
		t.Errorf("index:\n%s", body)
	}
	tests := []struct {
		user      string
		seesBob   bool
		seesLobby bool
	}{{"bob", true, false}, {"carol", false, false}, {"root", true, true}}
	for _, tt := range tests {
		br := s.browser()
		br.signIn(tt.user, tt.user+" password")
		body := br.get("/channels").body
		if got := strings.Contains(body, id); got != tt.seesBob {
			t.Errorf("%s's list shows bob's channel: %v", tt.user, got)
		}
		if got := strings.Contains(body, "Lobby"); got != tt.seesLobby {
			t.Errorf("%s's list shows Lobby: %v", tt.user, got)
		}
	}
}

// TestSignInRateLimit: failures are limited per user name and address,
// attempts per address; the limits lift as time passes.
func TestSignInRateLimit(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	s.srv.byAddr = newLimiter(addrBurst, addrEvery, maxTracked)
	s.srv.byName = newLimiter(nameBurst, nameEvery, maxTracked)
	s.srv.byPair = newLimiter(pairBurst, pairEvery, maxTracked)
	s.freezeClock()
	s.user("alice", "right password", false)
	b := s.browser()
	attempt := func(name, pw string) response {
		return b.post("/signin", url.Values{"name": {name}, "password": {pw}})
	}

	// Per user name (case-insensitively), from one address.
	for i := range pairBurst {
		name := "alice"
		if i%2 == 1 {
			name = "ALICE"
		}
		if r := attempt(name, "wrong"); r.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, r.status)
		}
	}
	r := attempt("alice", "right password")
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("attempt after the burst, right password: %d, want 429", r.status)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > int(pairEvery/time.Second) {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	s.advance(pairEvery)
	if r := attempt("alice", "right password"); r.status != http.StatusSeeOther {
		t.Errorf("after waiting: %d, want 303", r.status)
	}

	// Per address: distinct names, each well under its own limit, run out
	// the address's bucket.
	s.advance(addrBurst * addrEvery) // everything full again
	for i := range addrBurst {
		if r := attempt("user"+strconv.Itoa(i), "wrong"); r.status != http.StatusUnauthorized {
			t.Fatalf("name %d: %d, want 401", i, r.status)
		}
	}
	if r := attempt("someone-else", "wrong"); r.status != http.StatusTooManyRequests {
		t.Errorf("address over its burst: %d, want 429", r.status)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(2, time.Second, 4)
	steps := []struct {
		key     string
		advance time.Duration
		want    bool
	}{
		{"a", 0, true}, {"a", 0, true}, {"a", 0, false},
		{"b", 0, true},
		{"a", 500 * time.Millisecond, false},
		{"a", 500 * time.Millisecond, true}, {"a", 0, false},
		{"a", 10 * time.Second, true}, {"a", 0, true}, {"a", 0, false},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		if got, _ := l.take(st.key, now); got != st.want {
			t.Errorf("step %d (%s): %v, want %v", i, st.key, got, st.want)
		}
	}
	// The map stays bounded under a flood of keys.
	for i := range 100 {
		l.take(strconv.Itoa(i), now)
	}
	if n := len(l.buckets); n > 4 {
		t.Errorf("%d buckets kept, limit 4", n)
	}
}

func TestClientAddr(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.7:1234", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1234", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:1234", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:99", "2001:db8:1:2::/64"},
		{"garbage", "garbage"},
	}
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.remote}
		if got := clientAddr(r); got != tt.want {
			t.Errorf("clientAddr(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

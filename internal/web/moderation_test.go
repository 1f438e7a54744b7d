package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"channels/internal/forwarded"
	"channels/internal/metrics/metricstest"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// modSite is a site with a channel, its owner signed in, an administrator
// and another user, a frozen clock shared with the store, and a record of
// the clients the hub was asked to kick and to unkick.
type modSite struct {
	*site
	ch             store.Channel
	owner          *browser
	ownerClient    string
	admin, someone *browser
	kicked         chan string
	unkicked       chan string
}

func newModSite(t *testing.T, st *store.Store) *modSite {
	t.Helper()
	s := newSite(t, st, nil)
	s.freezeClock()
	st.SetClock(s.srv.now)
	m := &modSite{site: s, kicked: make(chan string, 16), unkicked: make(chan string, 16)}
	s.srv.kick = func(_ context.Context, id string) { m.kicked <- id }
	s.srv.unkick = func(_ context.Context, id string) { m.unkicked <- id }
	u := s.user("olga", "olga's password", false)
	s.user("root", "root's password", true)
	s.user("eve", "eve's password", false)
	m.ch = s.channel("Lobby", true, u.ID)
	m.owner, m.admin, m.someone = s.browser(), s.browser(), s.browser()
	m.owner.signIn("olga", "olga's password")
	m.admin.signIn("root", "root's password")
	m.someone.signIn("eve", "eve's password")
	m.ownerClient = m.owner.channelPage(m.ch.ID).ClientID
	return m
}

// member opens the channel page in a new browser and returns it with its
// client id; connected says its client logs in.
func (m *modSite) member(connected bool) (*browser, string) {
	m.t.Helper()
	b := m.browser()
	id := b.channelPage(m.ch.ID).ClientID
	if connected {
		if err := m.store.ClientLoggedIn(m.t.Context(), id, "192.0.2.1:5000", m.srv.now()); err != nil {
			m.t.Fatal(err)
		}
	}
	return b, id
}

// jsonAnswer decodes a JSON answer, failing on anything else.
func jsonAnswer(t *testing.T, r response) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("status %d, Content-Type %q, want JSON: %s", r.status, ct, r.body)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("answer %q: %v", r.body, err)
	}
	return v
}

// TestModerationEndpoints: only the channel's owner and administrators
// may remove, unremove and lock; every refusal and every mistake in the
// form is a JSON 4xx, never a 500 or an HTML page.
func TestModerationEndpoints(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			m := newModSite(t, b.Store)
			_, victim := m.member(true)
			stranger := m.browser()
			elsewhere := m.channel("Elsewhere", true, 0)
			outsider, err := b.Store.CreateClient(t.Context(), elsewhere.ID)
			if err != nil {
				t.Fatal(err)
			}
			remove := func(client string) url.Values { return url.Values{"client": {client}, "minutes": {"60"}} }
			base := "/c/" + m.ch.ID
			tests := []struct {
				name   string
				br     *browser
				path   string
				ctype  string
				body   string
				status int
			}{
				{"stranger removes", stranger, base + "/remove", "", remove(victim).Encode(), 403},
				{"another user removes", m.someone, base + "/remove", "", remove(victim).Encode(), 403},
				{"another user locks", m.someone, base + "/lock", "", "locked=1", 403},
				{"another user unremoves", m.someone, base + "/unremove", "", "client=" + victim, 403},
				{"no client", m.owner, base + "/remove", "", "minutes=60", 400},
				{"malformed client", m.owner, base + "/remove", "", "client=x&minutes=60", 400},
				{"client twice", m.owner, base + "/remove", "", "client=" + victim + "&client=" + victim, 400},
				{"minutes not offered", m.owner, base + "/remove", "", "client=" + victim + "&minutes=30", 400},
				{"minutes not a number", m.owner, base + "/remove", "", "client=" + victim + "&minutes=1h", 400},
				{"minutes negative", m.owner, base + "/remove", "", "client=" + victim + "&minutes=-60", 400},
				{"minutes not text", m.owner, base + "/remove", "", "client=" + victim + "&minutes=%ff", 400},
				{"one's own client", m.owner, base + "/remove", "", remove(m.ownerClient).Encode(), 400},
				{"undecodable form", m.owner, base + "/remove", "", "client=%zz", 400},
				{"JSON body", m.owner, base + "/remove", "application/json", `{"client":"` + victim + `"}`, 415},
				{"too large", m.owner, base + "/remove", "", "client=" + strings.Repeat("a", maxFormBytes+1), 413},
				{"client of another channel", m.owner, base + "/remove", "", remove(outsider.ID).Encode(), 404},
				{"unknown client", m.owner, base + "/remove", "", remove("00000000-0000-4000-8000-000000000000").Encode(), 404},
				{"unknown channel", m.owner, "/c/00000000-0000-4000-8000-000000000000/remove", "", remove(victim).Encode(), 404},
				{"malformed channel", m.owner, "/c/nope/lock", "", "locked=1", 404},
				{"locked neither 1 nor 0", m.owner, base + "/lock", "", "locked=yes", 400},
				{"locked missing", m.owner, base + "/lock", "", "", 400},
				{"unremove one not removed", m.owner, base + "/unremove", "", "client=" + victim, 404},
				{"unremove malformed", m.owner, base + "/unremove", "", "client=%00", 400},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ct := tt.ctype
					if ct == "" {
						ct = "application/x-www-form-urlencoded"
					}
					r := tt.br.postRaw(tt.path, ct, tt.body)
					if r.status != tt.status {
						t.Errorf("status %d, want %d: %s", r.status, tt.status, r.body)
					}
					if v := jsonAnswer(t, r); v["error"] == "" || v["error"] == nil {
						t.Errorf("no error message: %s", r.body)
					}
				})
			}
			if mod, err := b.Store.Moderation(t.Context(), m.ch.ID); err != nil || len(mod.Removed) != 0 || !mod.Locked.IsZero() {
				t.Fatalf("refused requests changed the channel: %+v, %v", mod, err)
			}
			select {
			case id := <-m.kicked:
				t.Fatalf("refused requests kicked %s", id)
			default:
			}

			// Another site's page posting with the owner's cookies.
			for _, path := range []string{"/remove", "/unremove", "/lock"} {
				req, _ := http.NewRequest(http.MethodPost, m.ts.URL+base+path, strings.NewReader(remove(victim).Encode()+"&locked=1"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", "https://evil.example")
				req.Header.Set("Sec-Fetch-Site", "cross-site")
				r := m.owner.do(req)
				if v := jsonAnswer(t, r); r.status != http.StatusForbidden || v["error"] == nil {
					t.Errorf("cross-site POST %s: status %d: %s", path, r.status, r.body)
				}
			}
			if mod, _ := b.Store.Moderation(t.Context(), m.ch.ID); len(mod.Removed) != 0 || !mod.Locked.IsZero() {
				t.Fatalf("cross-site requests changed the channel: %+v", mod)
			}

			// The owner and an administrator may.
			for _, br := range []*browser{m.owner, m.admin} {
				r := br.post(base+"/remove", url.Values{"client": {victim}, "minutes": {"1440"}})
				v := jsonAnswer(t, r)
				until := m.srv.now().Add(24 * time.Hour).Unix()
				if r.status != 200 || v["removed"] != victim || v["until"] != float64(until) {
					t.Errorf("remove: status %d: %s; want until %d", r.status, r.body, until)
				}
				if got := <-m.kicked; got != victim {
					t.Errorf("kicked %s, want %s", got, victim)
				}
				for _, locked := range []string{"1", "0"} {
					r := br.post(base+"/lock", url.Values{"locked": {locked}})
					if v := jsonAnswer(t, r); r.status != 200 || v["locked"] != (locked == "1") {
						t.Errorf("lock=%s: status %d: %s", locked, r.status, r.body)
					}
				}
				r = br.post(base+"/unremove", url.Values{"client": {victim}})
				if v := jsonAnswer(t, r); r.status != 200 || v["unremoved"] != victim {
					t.Errorf("unremove: status %d: %s", r.status, r.body)
				}
			}
			// minutes left out: an hour.
			r := m.owner.post(base+"/remove", url.Values{"client": {victim}})
			if v := jsonAnswer(t, r); r.status != 200 || v["until"] != float64(m.srv.now().Add(time.Hour).Unix()) {
				t.Errorf("remove without minutes: %d %s", r.status, r.body)
			}
		})
	}
}

var untilRE = regexp.MustCompile(`You were removed from this channel until (\d\d:\d\d UTC on \d+ \w+ \d{4})\.`)

// TestRemovedPage: a removed member's reloads, and new visitors from its
// address, get a 403 page saying so and until when, without a client and
// without spending the address's budget of new clients; other members
// from that address stay. When the removal ends, all is as before.
func TestRemovedPage(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			m := newModSite(t, b.Store)
			logs, scrape := withMetrics(t, m.site)
			before := scrape()
			removed, id := m.member(true)     // trusted by its session after its login
			neighbour, nid := m.member(false) // same address, looked up on every view
			r := m.owner.post("/c/"+m.ch.ID+"/remove", url.Values{"client": {id}, "minutes": {"15"}})
			if r.status != 200 {
				t.Fatalf("remove: %d %s", r.status, r.body)
			}
			until := m.srv.now().Add(15 * time.Minute).UTC().Format("15:04 UTC on 2 January 2006")
			// One token left: refusals must not spend it.
			m.srv.newClients = newLimiter(1, time.Hour, maxTracked)
			clients, err := b.Store.CountClients(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, tt := range []struct {
				name string
				br   *browser
			}{
				{"removed member reloads", removed},
				{"and again", removed},
				{"new browser from its address", m.browser()},
				{"another new browser", m.browser()},
			} {
				r := tt.br.get("/c/" + m.ch.ID)
				got := untilRE.FindStringSubmatch(r.body)
				if r.status != http.StatusForbidden || got == nil || got[1] != until {
					t.Errorf("%s: status %d, want 403 saying removed until %s:\n%s", tt.name, r.status, until, r.body)
				}
				if strings.Contains(r.body, "channel-config") {
					t.Errorf("%s: the page hands out a client", tt.name)
				}
			}
			if n, _ := b.Store.CountClients(t.Context()); n != clients {
				t.Errorf("refusals stored %d clients", n-clients)
			}
			if cfg := neighbour.channelPage(m.ch.ID); cfg.ClientID != nid || !slices.Equal(cfg.Removed, []string{id}) {
				t.Errorf("other member from the address: %+v", cfg)
			}
			if cfg := m.owner.channelPage(m.ch.ID); !cfg.Moderate || !slices.Equal(cfg.Removed, []string{id}) ||
				cfg.ModURL != "/c/"+m.ch.ID+"/moderation" || cfg.Locked {
				t.Errorf("owner's page: %+v", cfg)
			}
			if cfg := neighbour.channelPage(m.ch.ID); cfg.Moderate {
				t.Errorf("a member's page may moderate")
			}
			if !regexp.MustCompile(`level=INFO msg="channel member removed" user=olga user_id=\d+ channel=` + m.ch.ID + ` client=` + id).MatchString(logs.String()) {
				t.Errorf("removal not logged:\n%s", logs)
			}
			if !regexp.MustCompile(`level=WARN msg="channel page refused: removed" client=127\.0\.0\.1 channel=` + m.ch.ID).MatchString(logs.String()) {
				t.Errorf("refused page not logged:\n%s", logs)
			}
			after := scrape()
			if d := metricstest.Delta(before, after, "channels_moderation_refusals_total", "where", "page", "why", "removed"); d != 4 {
				t.Errorf("page refusals counted %v, want 4", d)
			}
			if d := metricstest.Delta(before, after, "channels_moderation_actions_total", "action", "remove"); d != 1 {
				t.Errorf("removals counted %v, want 1", d)
			}
			if d := metricstest.Delta(before, after, "channels_web_rate_limited_total", "limit", "new_clients"); d != 0 {
				t.Errorf("refusals hit the new-client budget %v times", d)
			}

			m.advance(15 * time.Minute)
			if cfg := removed.channelPage(m.ch.ID); cfg.ClientID != id || len(cfg.Removed) != 0 {
				t.Errorf("after the removal ended: %+v", cfg)
			}
			if cfg := m.browser().channelPage(m.ch.ID); cfg.ClientID == "" {
				t.Error("no client for a newcomer after the removal ended")
			}
		})
	}
}

// TestRemovedOrigin: a removed client's origin is the address its page
// was created from, as the per-address limits count it: behind trusted
// proxies the forwarded one, and for IPv6 its /64.
func TestRemovedOrigin(t *testing.T) {
	m := newModSite(t, storetest.SQLite(t).Store)
	proxy := netip.MustParsePrefix("10.0.0.0/8")
	h := forwarded.Handler([]netip.Prefix{proxy}, m.srv)
	visit := func(xff string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/c/"+m.ch.ID, nil)
		req.RemoteAddr = "10.1.2.3:40000"
		req.Header.Set("X-Forwarded-For", xff)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	w := visit("2001:db8:1:2::5")
	if w.Code != 200 {
		t.Fatalf("first visit: %d", w.Code)
	}
	id := parseConfig(t, w.Body.String()).ClientID
	if c, err := m.store.ClientByID(t.Context(), id); err != nil || c.Origin != "2001:db8:1:2::/64" {
		t.Fatalf("client %+v, %v: origin", c, err)
	}
	if r := m.owner.post("/c/"+m.ch.ID+"/remove", url.Values{"client": {id}}); r.status != 200 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	for _, tt := range []struct {
		xff    string
		status int
	}{
		{"2001:db8:1:2::99", 403},           // same /64
		{"2001:db8:1:2:ffff::1", 403},       // same /64
		{"2001:db8:1:3::5", 200},            // the next /64
		{"192.0.2.7", 200},                  // another address
		{"2001:db8:1:2::1, 10.9.9.9", 403},  // through two proxies
		{"2001:db8:1:2::1, 192.0.2.7", 200}, // the left entry proves nothing
	} {
		if got := visit(tt.xff).Code; got != tt.status {
			t.Errorf("X-Forwarded-For %s: status %d, want %d", tt.xff, got, tt.status)
		}
	}
}

// TestLockedPage: while a channel is locked, the members present at the
// lock keep their pages (reloads too), a signed-in manager always gets in
// and is admitted, and everyone else gets a 403 saying it is locked,
// without a client. The unlock lets them in again.
func TestLockedPage(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			m := newModSite(t, b.Store)
			logs, scrape := withMetrics(t, m.site)
			before := scrape()
			present, pid := m.member(true)
			absent, _ := m.member(false)
			m.advance(store.LockPresence) // absent's creation is long past; present is connected
			if r := m.owner.post("/c/"+m.ch.ID+"/lock", url.Values{"locked": {"1"}}); r.status != 200 {
				t.Fatalf("lock: %d %s", r.status, r.body)
			}
			clients, _ := b.Store.CountClients(t.Context())
			newcomer := m.browser()
			for _, tt := range []struct {
				name   string
				br     *browser
				status int
			}{
				{"present member reloads", present, 200},
				{"absent member", absent, 403},
				{"newcomer", newcomer, 403},
				{"newcomer again", newcomer, 403},
				{"owner", m.owner, 200},
				{"administrator's first visit", m.admin, 200},
				{"another user", m.someone, 403},
			} {
				r := tt.br.get("/c/" + m.ch.ID)
				if r.status != tt.status {
					t.Errorf("%s: status %d, want %d", tt.name, r.status, tt.status)
				}
				if tt.status == 403 && !strings.Contains(r.body, "This channel is locked") {
					t.Errorf("%s: the page does not say it is locked:\n%s", tt.name, r.body)
				}
				if tt.status == 200 && !parseConfig(t, r.body).Locked {
					t.Errorf("%s: config not locked", tt.name)
				}
			}
			if n, _ := b.Store.CountClients(t.Context()); n != clients+1 { // the administrator's
				t.Errorf("%d clients stored while locked, want 1 (the administrator's)", n-clients)
			}
			// The administrator's client is admitted: its login would pass.
			adminClient := m.admin.channelPage(m.ch.ID).ClientID
			mod, err := b.Store.Moderation(t.Context(), m.ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			if c, err := b.Store.ClientByID(t.Context(), adminClient); err != nil || mod.Refusal(c) != "" {
				t.Errorf("administrator's client refused (%v)", err)
			}
			// The present member's socket drops; it reloads and is still in.
			if err := b.Store.ClearClientConnected(t.Context(), pid); err != nil {
				t.Fatal(err)
			}
			m.advance(time.Hour)
			if r := present.get("/c/" + m.ch.ID); r.status != 200 {
				t.Errorf("present member after a disconnect: %d", r.status)
			}
			if !strings.Contains(logs.String(), `level=INFO msg="channel locked" user=olga`) {
				t.Errorf("lock not logged:\n%s", logs)
			}

			if r := m.owner.post("/c/"+m.ch.ID+"/lock", url.Values{"locked": {"0"}}); r.status != 200 {
				t.Fatalf("unlock: %d %s", r.status, r.body)
			}
			for _, br := range []*browser{absent, newcomer, m.someone} {
				if r := br.get("/c/" + m.ch.ID); r.status != 200 || parseConfig(t, r.body).Locked {
					t.Errorf("after the unlock: status %d", r.status)
				}
			}
			after := scrape()
			if d := metricstest.Delta(before, after, "channels_moderation_refusals_total", "where", "page", "why", "locked"); d != 4 {
				t.Errorf("locked page refusals counted %v, want 4", d)
			}
			for _, a := range []string{"lock", "unlock"} {
				if d := metricstest.Delta(before, after, "channels_moderation_actions_total", "action", a); d != 1 {
					t.Errorf("%s counted %v, want 1", a, d)
				}
			}
		})
	}
}

// TestManagerAlwaysAdmitted: a manager's device that was removed (from
// another of the manager's browsers) gets in when the manager views the
// page, which lifts the removal.
func TestManagerAlwaysAdmitted(t *testing.T) {
	m := newModSite(t, storetest.SQLite(t).Store)
	phone := m.browser()
	phone.signIn("olga", "olga's password")
	pid := phone.channelPage(m.ch.ID).ClientID
	if r := m.owner.post("/c/"+m.ch.ID+"/remove", url.Values{"client": {pid}}); r.status != 200 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	if cfg := phone.channelPage(m.ch.ID); cfg.ClientID != pid || len(cfg.Removed) != 0 {
		t.Errorf("manager's removed device: %+v", cfg)
	}
	if mod, _ := m.store.Moderation(t.Context(), m.ch.ID); len(mod.Removed) != 0 {
		t.Errorf("removal not lifted: %+v", mod.Removed)
	}
}

// TestModerationState: GET /c/{id}/moderation answers the state to a
// browser holding a client of the channel, removed or not, within its
// client's budget; anyone else is refused.
func TestModerationState(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			m := newModSite(t, b.Store)
			_, scrape := withMetrics(t, m.site)
			before := scrape()
			present, _ := m.member(true)
			removed, rid := m.member(true)
			absent, _ := m.member(false)
			m.advance(store.LockPresence)
			url0 := "/c/" + m.ch.ID + "/moderation"
			state := func(br *browser) (int, moderationAnswer) {
				t.Helper()
				r := br.get(url0)
				jsonAnswer(t, r)
				var a moderationAnswer
				json.Unmarshal([]byte(r.body), &a)
				if r.status == 200 && a.Removed == nil {
					t.Errorf("removed is null, want a list: %s", r.body)
				}
				return r.status, a
			}
			if st, a := state(present); st != 200 || a.Locked || len(a.Removed) != 0 || a.You != "" {
				t.Errorf("before: %d %+v", st, a)
			}
			if r := m.owner.post("/c/"+m.ch.ID+"/remove", url.Values{"client": {rid}}); r.status != 200 {
				t.Fatal(r.body)
			}
			if r := m.owner.post("/c/"+m.ch.ID+"/lock", url.Values{"locked": {"1"}}); r.status != 200 {
				t.Fatal(r.body)
			}
			for _, tt := range []struct {
				name   string
				br     *browser
				status int
				you    string
			}{
				{"present", present, 200, ""},
				{"removed", removed, 200, "removed"},
				{"absent at the lock", absent, 200, "locked"},
				{"owner", m.owner, 200, ""},
				{"no client here", m.someone, 403, ""},
				{"stranger", m.browser(), 403, ""},
			} {
				st, a := state(tt.br)
				if st != tt.status || a.You != tt.you {
					t.Errorf("%s: %d %+v, want %d you=%q", tt.name, st, a, tt.status, tt.you)
				}
				if st == 200 && (!a.Locked || !slices.Equal(a.Removed, []string{rid})) {
					t.Errorf("%s: %+v", tt.name, a)
				}
			}
			if r := present.get("/c/nope/moderation"); r.status != 404 {
				t.Errorf("malformed channel: %d", r.status)
			}

			// The budget: present has spent 2 of 10.
			for range modReadBurst - 2 {
				if st, _ := state(present); st != 200 {
					t.Fatalf("within the budget: %d", st)
				}
			}
			r := present.get(url0)
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" {
				t.Errorf("over the budget: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
			}
			jsonAnswer(t, r)
			if st, _ := state(absent); st != 200 {
				t.Errorf("another client's budget spent: %d", st)
			}
			m.advance(modReadEvery)
			if st, _ := state(present); st != 200 {
				t.Errorf("after %v: %d", modReadEvery, st)
			}
			if d := metricstest.Delta(before, scrape(), "channels_web_rate_limited_total", "limit", "moderation_reads"); d != 1 {
				t.Errorf("moderation reads rate limited counted %v, want 1", d)
			}
		})
	}
}

// TestUnremoveUnkicks: an unremove, once committed, has the hub lift its
// refusal of the client (Options.Unkick), and so does a manager's page
// view that lifts the removal of the manager's own device; an unremove
// refused does not.
func TestUnremoveUnkicks(t *testing.T) {
	m := newModSite(t, storetest.SQLite(t).Store)
	_, victim := m.member(true)
	base := "/c/" + m.ch.ID
	if r := m.someone.post(base+"/unremove", url.Values{"client": {victim}}); r.status != 403 {
		t.Errorf("another user's unremove: %d", r.status)
	}
	if r := m.owner.post(base+"/unremove", url.Values{"client": {victim}}); r.status != 404 {
		t.Errorf("unremove of one not removed: %d", r.status)
	}
	select {
	case id := <-m.unkicked:
		t.Fatalf("refused unremoves unkicked %s", id)
	default:
	}
	if r := m.owner.post(base+"/remove", url.Values{"client": {victim}}); r.status != 200 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	<-m.kicked
	if r := m.owner.post(base+"/unremove", url.Values{"client": {victim}}); r.status != 200 {
		t.Fatalf("unremove: %d %s", r.status, r.body)
	}
	select {
	case id := <-m.unkicked:
		if id != victim {
			t.Errorf("unkicked %s, want %s", id, victim)
		}
	default:
		t.Fatal("the unremove did not unkick")
	}

	phone := m.browser()
	phone.signIn("olga", "olga's password")
	pid := phone.channelPage(m.ch.ID).ClientID
	if r := m.owner.post(base+"/remove", url.Values{"client": {pid}}); r.status != 200 {
		t.Fatalf("remove the owner's phone: %d %s", r.status, r.body)
	}
	<-m.kicked
	phone.channelPage(m.ch.ID) // lifts the removal
	select {
	case id := <-m.unkicked:
		if id != pid {
			t.Errorf("unkicked %s, want the phone's %s", id, pid)
		}
	default:
		t.Fatal("lifting the manager's own removal did not unkick")
	}
}

// TestModerationStateFresh: GET /c/{id}/moderation answers a removal and
// a lock another process made a moment ago, even on a process that read
// the state just before: a page fetches it once per hint.
func TestModerationStateFresh(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			m := newModSite(t, b.Store)
			present, _ := m.member(true)
			_, victim := m.member(true)
			other, err := store.Open(ctx, b.URL) // another process
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			other.SetClock(m.srv.now)
			state := func() moderationAnswer {
				t.Helper()
				r := present.get("/c/" + m.ch.ID + "/moderation")
				jsonAnswer(t, r)
				var a moderationAnswer
				if err := json.Unmarshal([]byte(r.body), &a); err != nil || r.status != 200 {
					t.Fatalf("status %d: %s (%v)", r.status, r.body, err)
				}
				return a
			}
			if a := state(); a.Locked || len(a.Removed) != 0 {
				t.Fatalf("before: %+v", a)
			}
			// Within store.ModerationAge of that read (the clock is frozen).
			if _, err := other.Remove(ctx, m.ch.ID, victim, 0, m.srv.now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if _, err := other.Lock(ctx, m.ch.ID, m.srv.now(), ""); err != nil {
				t.Fatal(err)
			}
			if mod, _ := m.store.Moderation(ctx, m.ch.ID); len(mod.Removed) != 0 {
				t.Fatalf("this process's cache already has the removal: the test proves nothing")
			}
			if a := state(); !a.Locked || !slices.Equal(a.Removed, []string{victim}) || a.You != "" {
				t.Errorf("after another process's removal and lock: %+v; want locked, %s removed", a, victim)
			}
		})
	}
}

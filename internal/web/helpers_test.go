package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"channels/internal/config"
	"channels/internal/password"
	"channels/internal/store"
	"channels/internal/webclient"
)

// cheapHash keeps sign-in tests fast; Verify reads the cost from the hash.
func cheapHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// site is one running web application over a real store.
type site struct {
	t     testing.TB
	ts    *httptest.Server
	srv   *Server
	store *store.Store
	cfg   config.Config

	mu    sync.Mutex
	clock time.Time
}

// newSite starts the web application on st; edit may change the
// configuration before the server is built.
func newSite(t testing.TB, st *store.Store, edit func(*config.Config)) *site {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	cfg := config.Default()
	cfg.BaseURL = "http://" + ts.Listener.Addr().String()
	if edit != nil {
		edit(&cfg)
	}
	assets, err := webclient.New()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Config: cfg, Store: st, Assets: assets, Static: assets.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	// Tests sign in often from one address; TestSignInRateLimit puts the
	// real limits back.
	srv.byAddr = newLimiter(1e6, time.Millisecond, maxTracked)
	srv.byName = newLimiter(1e6, time.Millisecond, maxTracked)
	srv.byPair = newLimiter(1e6, time.Millisecond, maxTracked)
	// Likewise for new clients; TestNewClientBudget puts the real one back.
	srv.newClients = newLimiter(1e6, time.Millisecond, maxTracked)
	s := &site{t: t, ts: ts, srv: srv, store: st, cfg: cfg, clock: time.Now()}
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)
	return s
}

// freezeClock makes the server's clock (used by the rate limiter) move
// only when advance is called.
func (s *site) freezeClock() {
	s.srv.now = func() time.Time {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.clock
	}
}

func (s *site) advance(d time.Duration) {
	s.mu.Lock()
	s.clock = s.clock.Add(d)
	s.mu.Unlock()
}

func (s *site) user(name, pw string, admin bool) store.User {
	s.t.Helper()
	u, err := s.store.CreateUser(s.t.Context(), name, cheapHash(s.t, pw), admin)
	if err != nil {
		s.t.Fatal(err)
	}
	return u
}

func (s *site) channel(topic string, public bool, owner int64) store.Channel {
	s.t.Helper()
	ch, err := s.store.CreateChannel(s.t.Context(), topic, public, owner)
	if err != nil {
		s.t.Fatal(err)
	}
	return ch
}

// browser is one browser: its own cookie jar.
type browser struct {
	t    testing.TB
	site *site
	c    *http.Client
}

func (s *site) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return &browser{t: s.t, site: s, c: &http.Client{
		Jar: jar,
		// Redirects are part of what the tests check.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.site.ts.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form the way a browser does from a page of the site.
func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	return b.postRaw(path, "application/x-www-form-urlencoded", form.Encode())
}

func (b *browser) postRaw(path, contentType, body string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.site.ts.URL+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Origin", b.site.ts.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

func (b *browser) signIn(name, pw string) {
	b.t.Helper()
	if r := b.post("/signin", url.Values{"name": {name}, "password": {pw}}); r.status != http.StatusSeeOther {
		b.t.Fatalf("sign in as %s: status %d: %s", name, r.status, r.body)
	}
}

func (b *browser) signOut() {
	b.t.Helper()
	if r := b.post("/signout", nil); r.status != http.StatusSeeOther {
		b.t.Fatalf("sign out: status %d", r.status)
	}
}

// sessionCookie is the value of the browser's session cookie.
func (b *browser) sessionCookie() string {
	u, _ := url.Parse(b.site.ts.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "channels_session" {
			return c.Value
		}
	}
	return ""
}

var configRE = regexp.MustCompile(`(?s)<script type="application/json" id="channel-config">(.*?)</script>`)

// channelPage opens a channel page and returns the configuration it hands
// the browser client.
func (b *browser) channelPage(id string) channelConfig {
	b.t.Helper()
	r := b.get("/c/" + id)
	if r.status != http.StatusOK {
		b.t.Fatalf("GET /c/%s: status %d", id, r.status)
	}
	return parseConfig(b.t, r.body)
}

func parseConfig(t testing.TB, body string) channelConfig {
	t.Helper()
	m := configRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no channel-config element in page:\n%s", body)
	}
	var c channelConfig
	dec := json.NewDecoder(strings.NewReader(m[1]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("channel-config %q: %v", m[1], err)
	}
	return c
}

package web

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"channels/internal/config"
	"channels/internal/store/storetest"
)

func TestIndexListsPublicChannelsNewestFirst(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	s.channel("First public", true, 0)
	secret := s.channel("Secret", false, 0)
	last := s.channel("Second public", true, 0)

	r := s.browser().get("/")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	first := strings.Index(r.body, "First public")
	second := strings.Index(r.body, "Second public")
	if first < 0 || second < 0 || second > first {
		t.Errorf("want both public channels, newest first:\n%s", r.body)
	}
	if strings.Contains(r.body, "Secret") || strings.Contains(r.body, secret.ID) {
		t.Errorf("private channel listed:\n%s", r.body)
	}
	if !strings.Contains(r.body, `href="/c/`+last.ID+`"`) {
		t.Errorf("no link to /c/%s", last.ID)
	}
}

func TestChannelPage(t *testing.T) {
	ice := []config.ICEServer{{URLs: []string{"stun:stun.example:3478"}}, {URLs: []string{"turn:turn.example:3478"}, Username: "u", Credential: "p"}}
	tests := []struct {
		name      string
		edit      func(*config.Config)
		wantVerto func(host string) string
		wantICE   []config.ICEServer
		domain    string
	}{
		{
			name:      "embedded hub",
			wantVerto: func(host string) string { return "ws://" + host + "/verto" },
			wantICE:   []config.ICEServer{},
			domain:    "127.0.0.1",
		},
		{
			name: "FreeSWITCH and TURN",
			edit: func(c *config.Config) {
				c.VertoURL = "wss://fs.example:8082/verto"
				c.ICEServers = ice
				c.Domain = "calls.example"
			},
			wantVerto: func(string) string { return "wss://fs.example:8082/verto" },
			wantICE:   ice,
			domain:    "calls.example",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t, storetest.SQLite(t).Store, tt.edit)
			topic := `</script><script>alert("x")</script> & “quotes”`
			ch := s.channel(topic, false, 0)
			r := s.browser().get("/c/" + ch.ID)
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			c := parseConfig(t, r.body)
			host := strings.TrimPrefix(s.ts.URL, "http://")
			if c.ChannelID != ch.ID || c.Topic != topic || c.VertoURL != tt.wantVerto(host) || c.Domain != tt.domain {
				t.Errorf("config = %+v", c)
			}
			if !slices.EqualFunc(c.ICEServers, tt.wantICE, func(a, b config.ICEServer) bool {
				return slices.Equal(a.URLs, b.URLs) && a.Username == b.Username && a.Credential == b.Credential
			}) {
				t.Errorf("iceServers = %+v, want %+v", c.ICEServers, tt.wantICE)
			}
			if !strings.Contains(r.body, `"iceServers":[`) {
				t.Errorf("iceServers is not a JSON array")
			}
			if !strings.Contains(r.body, `<div id="channel-app"></div>`) {
				t.Errorf("no channel-app element")
			}
			js := `<script type="module" src="` + s.srv.assets.URL("channel.js") + `"></script>`
			if !strings.Contains(r.body, js) {
				t.Errorf("no %s", js)
			}
			// The page loads the style sheet and the one bundle of
			// its modules, nothing else (webclient's budget test counts
			// these two files).
			var loads []string
			for _, m := range regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(r.body, -1) {
				loads = append(loads, m[1])
			}
			if want := []string{s.srv.assets.URL("site.css"), s.srv.assets.URL("channel.js")}; !slices.Equal(loads, want) {
				t.Errorf("page loads %q, want %q", loads, want)
			}
			// Every script element either loads a file or is JSON data.
			for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(r.body, -1) {
				if !strings.Contains(tag, ` src="/static/`) && tag != `<script type="application/json" id="channel-config">` {
					t.Errorf("inline script element %s", tag)
				}
			}
			if strings.Count(r.body, "<script") != 2 {
				t.Errorf("want exactly two script elements (topic escaped):\n%s", r.body)
			}
			if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
		})
	}
}

func TestStaticFilesServed(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	r := s.browser().get(s.srv.assets.URL("site.css"))
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("site.css: status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
}

func TestHealthz(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := newSite(t, b.Store, nil)
			if r := s.browser().get("/healthz"); r.status != http.StatusOK || r.body != "ok\n" {
				t.Errorf("healthy: %d %q", r.status, r.body)
			}
			b.Store.Close()
			if r := s.browser().get("/healthz"); r.status != http.StatusServiceUnavailable {
				t.Errorf("database closed: %d %q", r.status, r.body)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	ch := s.channel("Lobby", true, 0)
	host := strings.TrimPrefix(s.ts.URL, "http://")
	b := s.browser()
	for _, path := range []string{"/", "/c/" + ch.ID, "/signin", "/healthz", "/nope", "/c/bad", s.srv.assets.URL("site.css")} {
		t.Run(path, func(t *testing.T) {
			r := b.get(path)
			for k, want := range map[string]string{
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "same-origin",
				"X-Frame-Options":        "DENY",
			} {
				if got := r.header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			csp := parseCSP(r.header.Get("Content-Security-Policy"))
			for dir, want := range map[string]string{
				"default-src":     "'self'",
				"script-src":      "'self'",
				"connect-src":     "'self' ws://" + host,
				"img-src":         "'self' data:",
				"media-src":       "'self' blob:",
				"frame-ancestors": "'none'",
				"base-uri":        "'none'",
				"form-action":     "'self'",
				"object-src":      "'none'",
			} {
				if csp[dir] != want {
					t.Errorf("CSP %s = %q, want %q", dir, csp[dir], want)
				}
			}
			for _, dir := range []string{"script-src", "default-src", "style-src"} {
				if strings.Contains(csp[dir], "unsafe") {
					t.Errorf("CSP %s allows %q", dir, csp[dir])
				}
			}
		})
	}
}

func TestCSPConnectsToConfiguredVerto(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, func(c *config.Config) { c.VertoURL = "wss://fs.example:8082/verto" })
	csp := parseCSP(s.browser().get("/").header.Get("Content-Security-Policy"))
	if csp["connect-src"] != "'self' wss://fs.example:8082" {
		t.Errorf("connect-src %q", csp["connect-src"])
	}
}

func TestVertoURLHost(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, func(c *config.Config) { c.BaseURL = "https://channels.example" })
	tests := []struct{ host, want string }{
		{"channels.example", "wss://channels.example/verto"},
		{"localhost:8080", "wss://localhost:8080/verto"},
		{"[::1]:8080", "wss://[::1]:8080/verto"},
		{"evil;script-src *", "wss://channels.example/verto"},
		{"a b", "wss://channels.example/verto"},
		{"", "wss://channels.example/verto"},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Host = tt.host
		if got := s.srv.vertoURL(r); got != tt.want {
			t.Errorf("Host %q: %q, want %q", tt.host, got, tt.want)
		}
	}
}

func parseCSP(h string) map[string]string {
	m := make(map[string]string)
	for _, d := range strings.Split(h, ";") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), " ")
		m[name] = val
	}
	return m
}

// TestDatabaseDown: when the database fails, pages are a clean 500 page
// and the failure is logged; nothing half-written reaches the browser.
func TestDatabaseDown(t *testing.T) {
	b := storetest.SQLite(t)
	s := newSite(t, b.Store, nil)
	ch := s.channel("Lobby", true, 0)
	b.Store.Close()
	for _, path := range []string{"/", "/c/" + ch.ID} {
		r := s.browser().get(path)
		if r.status != http.StatusInternalServerError || !strings.Contains(r.body, "Something went wrong on our side") {
			t.Errorf("GET %s: %d\n%s", path, r.status, r.body)
		}
		if strings.Count(r.body, "<html") != 1 {
			t.Errorf("GET %s: not exactly one page:\n%s", path, r.body)
		}
	}
}

package web

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"channels/internal/store/storetest"
)

func TestEmbeddedElsewhere(t *testing.T) {
	for _, tc := range []struct {
		site, mode, dest string
		want             bool
	}{
		{"", "", "", false},                            // no Fetch Metadata: an older browser, curl
		{"none", "navigate", "document", false},        // typed or bookmarked
		{"same-origin", "navigate", "document", false}, // a link on the site
		{"same-origin", "cors", "empty", false},        // the site's own fetch()
		{"cross-site", "navigate", "document", false},  // a link elsewhere, followed
		{"same-site", "navigate", "document", false},
		{"cross-site", "no-cors", "image", true}, // <img src=…/c/ID>
		{"cross-site", "navigate", "iframe", true},
		{"cross-site", "navigate", "frame", true},
		{"cross-site", "navigate", "embed", true},
		{"cross-site", "no-cors", "script", true},
		{"cross-site", "no-cors", "empty", true}, // <link rel=prefetch>
		{"cross-site", "cors", "empty", true},    // fetch()
		{"cross-site", "navigate", "", true},
		{"same-site", "no-cors", "image", true},
	} {
		h := http.Header{}
		for k, v := range map[string]string{"Sec-Fetch-Site": tc.site, "Sec-Fetch-Mode": tc.mode, "Sec-Fetch-Dest": tc.dest} {
			if v != "" {
				h.Set(k, v)
			}
		}
		if got := embeddedElsewhere(h); got != tc.want {
			t.Errorf("site %q, mode %q, dest %q: embedded %v, want %v", tc.site, tc.mode, tc.dest, got, tc.want)
		}
	}
	// Loads the browser makes ahead of a person: refused from any site,
	// even when they look like a visit (Chromium's speculation rules send
	// Sec-Fetch-Site none, navigate, document).
	for _, tc := range []struct {
		header, value string
		want          bool
	}{
		{"Sec-Purpose", "prefetch", true},
		{"Sec-Purpose", "prefetch;prerender", true},
		{"Sec-Purpose", "prefetch;anonymous-client-ip", true},
		{"Purpose", "prefetch", true},
		{"X-Moz", "prefetch", true},
		{"X-Purpose", "preview", true},
		{"Sec-Purpose", "", false},
		{"Sec-Purpose", "something-else", false},
	} {
		h := http.Header{"Sec-Fetch-Site": {"none"}, "Sec-Fetch-Mode": {"navigate"}, "Sec-Fetch-Dest": {"document"}}
		if tc.value != "" {
			h.Set(tc.header, tc.value)
		}
		if got := embeddedElsewhere(h); got != tc.want {
			t.Errorf("%s: %q: refused %v, want %v", tc.header, tc.value, got, tc.want)
		}
	}
}

// TestEmbeddedChannelPage: a page elsewhere that makes its visitors'
// browsers load a channel page as an image or a frame, many times, gets
// 403s that create no client and no session, spend none of the visitor's
// budget of new clients and log nothing at WARN (fail2ban would ban the
// visitor); the visitor's own visits, a link they follow and browsers
// without Fetch Metadata are served as before. (Before, the first views
// created clients and the rest were 429s logged at WARN for the
// visitor's address.)
func TestEmbeddedChannelPage(t *testing.T) {
	b := storetest.SQLite(t)
	s := newSite(t, b.Store, nil)
	s.freezeClock()
	s.srv.newClients = newLimiter(DefaultNewClientBurst, DefaultNewClientEvery, maxTracked)
	var logs bytes.Buffer
	s.srv.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ch := s.channel("Lobby", true, 0)
	const visitor = "203.0.113.5:4000"
	view := func(site, mode, dest string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/c/"+ch.ID, nil)
		r.RemoteAddr = visitor
		if site != "" {
			r.Header.Set("Sec-Fetch-Site", site)
			r.Header.Set("Sec-Fetch-Mode", mode)
			r.Header.Set("Sec-Fetch-Dest", dest)
		}
		w := httptest.NewRecorder()
		s.srv.ServeHTTP(w, r)
		return w
	}

	clients0, sessions0 := countRows(t, b, "clients"), countRows(t, b, "sessions")
	for i := range 3 * DefaultNewClientBurst {
		dest, mode := "image", "no-cors"
		if i%2 == 1 {
			dest, mode = "iframe", "navigate"
		}
		w := view("cross-site", mode, dest)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "Open its link directly") {
			t.Fatalf("embedded view %d (%s): status %d, want 403 and its page\n%s", i, dest, w.Code, w.Body.String())
		}
		if c := sessionCookieOf(s, w); c != "" {
			t.Fatal("an embedded view got a session cookie")
		}
	}
	if n := countRows(t, b, "clients") - clients0; n != 0 {
		t.Errorf("embedded views created %d clients", n)
	}
	if n := countRows(t, b, "sessions") - sessions0; n != 0 {
		t.Errorf("embedded views created %d sessions", n)
	}
	if strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "level=DEBUG") {
		t.Errorf("embedded views logged, want DEBUG lines only:\n%s", logs.String())
	}

	// The visitor's budget is whole: a followed link, a typed address and
	// an old browser each get a client, up to the burst.
	for i := range DefaultNewClientBurst {
		site, mode, dest := []string{"cross-site", "none", ""}[i%3], "navigate", "document"
		if w := view(site, mode, dest); w.Code != http.StatusOK {
			t.Fatalf("top-level view %d (site %q): status %d", i, site, w.Code)
		}
	}
	if n := countRows(t, b, "clients") - clients0; n != DefaultNewClientBurst {
		t.Errorf("%d top-level views created %d clients", DefaultNewClientBurst, n)
	}
}

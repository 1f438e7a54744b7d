package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"channels/internal/store/storetest"
)

// TestLocalPath: only paths on this site survive; everything that a
// browser could read as another site, or that hides such a URL behind an
// encoding or a control character, becomes "/".
func TestLocalPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/channels/new", "/channels/new"},
		{"/c/0b9f6a1e-5c3d-4f2a-9e8b-7a6c5d4e3f21/edit", "/c/0b9f6a1e-5c3d-4f2a-9e8b-7a6c5d4e3f21/edit"},
		{"/channels?sort=topic&x=%2F%2Fevil", "/channels?sort=topic&x=%2F%2Fevil"}, // query is not a host
		{"/", "/"},
		{"", "/"},
		{"channels", "/"},
		{"//evil.example", "/"},
		{"//evil.example/path", "/"},
		{"///evil.example", "/"},
		{`/\evil.example`, "/"},
		{`/\/evil.example`, "/"},
		{`/a\b`, "/"},
		{"https://evil.example/", "/"},
		{"http:/evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"JavaScript:alert(1)", "/"},
		{" /channels", "/"},
		{"/%2F%2Fevil.example", "/"},
		{"/%2f%2fevil.example", "/"},
		{"/%5Cevil.example", "/"},
		{"/%5c%5cevil.example", "/"},
		{"/%09/evil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/channels\r\nSet-Cookie: x=y", "/"},
		{"/channels%0d%0aSet-Cookie:%20x=y", "/"},
		{"/channels\x00", "/"},
		{"/channels%00", "/"},
		{"/chann\x7fels", "/"},
		{"/ü", "/"},
		{"/%zz", "/"},
		{"/signin", "/"},
		{"/signin?next=/channels", "/"},
		{"/" + strings.Repeat("a", maxNextLen-1), "/" + strings.Repeat("a", maxNextLen-1)},
		{"/" + strings.Repeat("a", maxNextLen), "/"},
	}
	for _, tt := range tests {
		if got := localPath(tt.in); got != tt.want {
			t.Errorf("localPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

var nextFieldRE = regexp.MustCompile(`<input type="hidden" name="next" value="([^"]*)">`)

// TestSignInReturn: a page that needs a user sends the browser to the
// sign-in form, which brings it back there after signing in, wrong
// password or not; a return path to anywhere but this site leads home.
func TestSignInReturn(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := newSite(t, b.Store, nil)
			owner := s.user("owner", "owner password", false)
			ch := s.channel("Lobby", true, owner.ID)

			// The whole round trip, as a browser makes it.
			for _, page := range []string{"/channels/new", "/channels", "/c/" + ch.ID + "/edit", "/c/" + ch.ID + "/delete"} {
				t.Run("from "+page, func(t *testing.T) {
					br := s.browser()
					br.t = t
					r := br.get(page)
					want := "/signin?next=" + url.QueryEscape(page)
					if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
						t.Fatalf("GET %s anonymous: %d to %q, want 303 to %q", page, r.status, r.header.Get("Location"), want)
					}
					r = br.get(want)
					m := nextFieldRE.FindStringSubmatch(r.body)
					if r.status != http.StatusOK || m == nil || m[1] != page {
						t.Fatalf("sign-in form: %d, next field %q, want %q", r.status, m, page)
					}
					// A wrong password keeps the way back.
					r = br.post("/signin", url.Values{"name": {"owner"}, "password": {"wrong"}, "next": {page}})
					if m := nextFieldRE.FindStringSubmatch(r.body); r.status != http.StatusUnauthorized || m == nil || m[1] != page {
						t.Fatalf("wrong password: %d, next field %q, want 401 and %q", r.status, m, page)
					}
					r = br.post("/signin", url.Values{"name": {"owner"}, "password": {"owner password"}, "next": {page}})
					if r.status != http.StatusSeeOther || r.header.Get("Location") != page {
						t.Fatalf("sign in: %d to %q, want 303 to %q", r.status, r.header.Get("Location"), page)
					}
					if r := br.get(page); r.status != http.StatusOK {
						t.Fatalf("GET %s signed in: %d", page, r.status)
					}
				})
			}

			// The form sent without a user: an error page whose link
			// comes back.
			br := s.browser()
			r := br.post("/c/"+ch.ID+"/edit", url.Values{"topic": {"x"}})
			if want := `href="/signin?next=%2fc%2f` + ch.ID + `%2fedit"`; r.status != http.StatusUnauthorized || !strings.Contains(strings.ToLower(r.body), want) {
				t.Errorf("POST edit anonymous: %d, want 401 with %s:\n%s", r.status, want, r.body)
			}
			// The menu's link on a page anyone may see comes back too.
			if r := br.get("/c/" + ch.ID); !strings.Contains(strings.ToLower(r.body), `href="/signin?next=%2fc%2f`+ch.ID+`"`) {
				t.Errorf("channel page's sign-in link does not come back:\n%s", r.body)
			}

			// Where a crafted link may try to send the browser.
			tests := []struct{ name, next, want string }{
				{"none", "", "/"},
				{"local", "/channels?x=1", "/channels?x=1"},
				{"scheme-relative", "//evil.example", "/"},
				{"scheme-relative path", "//evil.example/channels", "/"},
				{"backslash", `/\evil.example`, "/"},
				{"absolute", "https://evil.example/", "/"},
				{"javascript", "javascript:alert(document.cookie)", "/"},
				{"encoded slashes", "/%2F%2Fevil.example", "/"},
				{"encoded backslash", "/%5Cevil.example", "/"},
				{"tab", "/\t/evil.example", "/"},
				{"CRLF", "/\r\nLocation: https://evil.example/", "/"},
				{"encoded CRLF", "/%0D%0ALocation:%20https://evil.example/", "/"},
				{"too long", "/" + strings.Repeat("a", maxNextLen), "/"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					br := s.browser()
					br.t = t
					form := br.get("/signin?" + url.Values{"next": {tt.next}}.Encode())
					m := nextFieldRE.FindStringSubmatch(form.body)
					switch {
					case tt.want == "/" && m != nil:
						t.Errorf("form carries next %q, want none", m[1])
					case tt.want != "/" && (m == nil || m[1] != tt.want):
						t.Errorf("form carries next %q, want %q", m, tt.want)
					}
					// Posted directly, as a forged form would.
					r := br.post("/signin", url.Values{"name": {"owner"}, "password": {"owner password"}, "next": {tt.next}})
					if r.status != http.StatusSeeOther || r.header.Get("Location") != tt.want {
						t.Errorf("sign in: %d to %q, want 303 to %q", r.status, r.header.Get("Location"), tt.want)
					}
				})
			}
			// next, like every field, may come once only.
			r = br.post("/signin", url.Values{"name": {"owner"}, "password": {"owner password"}, "next": {"/", "//evil.example"}})
			if r.status != http.StatusBadRequest {
				t.Errorf("next twice: %d, want 400", r.status)
			}
		})
	}
}

// TestCanonicalChannelURL: an upper-case id or a trailing slash on a
// channel URL is a permanent redirect to the canonical URL, query kept,
// without a session or a client; everything else keeps its old answer.
func TestCanonicalChannelURL(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := newSite(t, b.Store, nil)
			owner := s.user("owner", "owner password", false)
			ch := s.channel("Lobby", true, owner.ID)
			id, up := ch.ID, strings.ToUpper(ch.ID)
			// One letter upper case: the first (a hex digit a–f; an id
			// may begin with eight decimal digits).
			i := strings.IndexAny(id, "abcdef")
			mixed := id[:i] + strings.ToUpper(id[i:i+1]) + id[i+1:]

			tests := []struct {
				name, method, path string
				status             int
				location           string
			}{
				{"upper case", "GET", "/c/" + up, 301, "/c/" + id},
				{"mixed case", "GET", "/c/" + mixed, 301, "/c/" + id},
				{"trailing slash", "GET", "/c/" + id + "/", 301, "/c/" + id},
				{"upper case and slash", "GET", "/c/" + up + "/", 301, "/c/" + id},
				{"query kept", "GET", "/c/" + up + "?mic=off&x=%2F", 301, "/c/" + id + "?mic=off&x=%2F"},
				{"HEAD", "HEAD", "/c/" + up, 301, "/c/" + id},
				{"edit upper case", "GET", "/c/" + up + "/edit", 301, "/c/" + id + "/edit"},
				{"edit trailing slash", "GET", "/c/" + id + "/edit/", 301, "/c/" + id + "/edit"},
				{"delete upper case", "GET", "/c/" + up + "/delete/", 301, "/c/" + id + "/delete"},

				{"canonical", "GET", "/c/" + id, 200, ""},
				// Not redirected: the route asks for a user first (signed in,
				// it is a 404: TestBadInput).
				{"POST upper case", "POST", "/c/" + up + "/edit", 401, ""},
				{"POST trailing slash", "POST", "/c/" + id + "/delete/", 404, ""},
				{"DELETE upper case", "DELETE", "/c/" + up, 404, ""},
				{"suffix upper case", "GET", "/c/" + id + "/EDIT", 404, ""},
				{"unknown suffix", "GET", "/c/" + up + "/x", 404, ""},
				{"not a uuid", "GET", "/c/LOBBY/", 404, ""},
				{"no dashes", "GET", "/c/" + strings.ReplaceAll(up, "-", ""), 404, ""},
				{"braces", "GET", "/c/{" + up + "}", 404, ""},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					br := s.browser()
					br.t = t
					before := len(clientsOf(t, b, id))
					req, err := http.NewRequest(tt.method, s.ts.URL+tt.path, nil)
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("Origin", s.ts.URL)
					r := br.do(req)
					if r.status != tt.status {
						t.Fatalf("%s %s: %d, want %d\n%s", tt.method, tt.path, r.status, tt.status, r.body)
					}
					if r.status != http.StatusMovedPermanently {
						return
					}
					if got := r.header.Get("Location"); got != tt.location {
						t.Errorf("Location %q, want %q", got, tt.location)
					}
					if c := r.header.Values("Set-Cookie"); len(c) != 0 {
						t.Errorf("redirect sets cookies %q", c)
					}
					if n := len(clientsOf(t, b, id)); n != before {
						t.Errorf("redirect made clients: %d, then %d", before, n)
					}
					// Followed, it is the page (or, for the pages that need a
					// user, the way to the sign-in form).
					if r := br.get(tt.location); r.status != http.StatusOK && r.status != http.StatusSeeOther {
						t.Errorf("GET %s after redirect: %d", tt.location, r.status)
					}
				})
			}
		})
	}
}

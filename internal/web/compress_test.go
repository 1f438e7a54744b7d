package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"channels/internal/compress"
	"channels/internal/config"
	"channels/internal/store/storetest"
	"channels/internal/webclient"
)

// raw is a response as it came over the wire: body not decoded.
type raw struct {
	status int
	header http.Header
	body   []byte
}

// rawTransport does not ask for gzip by itself, nor decode it behind the
// test's back, as http.DefaultTransport does.
var rawTransport = &http.Transport{DisableCompression: true}

// fetch sends method path with the browser's cookies and the given
// Accept-Encoding ("" sends none), and returns the response undecoded.
func (b *browser) fetch(method, path, acceptEncoding string) raw {
	b.t.Helper()
	req, err := http.NewRequest(method, b.site.ts.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	c := *b.c
	c.Transport = rawTransport
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return raw{status: resp.StatusCode, header: resp.Header, body: body}
}

// decoded is the body with its Content-Encoding undone.
func (r raw) decoded(t testing.TB) []byte {
	t.Helper()
	var rd io.Reader = bytes.NewReader(r.body)
	switch ce := r.header.Get("Content-Encoding"); ce {
	case "":
		return r.body
	case compress.Gzip:
		zr, err := gzip.NewReader(rd)
		if err != nil {
			t.Fatal(err)
		}
		rd = zr
	case compress.Brotli:
		rd = brotli.NewReader(rd)
	default:
		t.Fatalf("Content-Encoding %q", ce)
	}
	out, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return out
}

func varies(h http.Header, on string) bool {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), on) {
				return true
			}
		}
	}
	return false
}

// TestPageCompression: pages for browsers without a session come gzipped
// when they accept it, with the headers caches need, and decode to the
// page itself.
func TestPageCompression(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	for range 20 {
		s.channel("A public channel with a topic", true, 0)
	}
	plain := s.browser().fetch("GET", "/", "")
	if plain.status != 200 || plain.header.Get("Content-Encoding") != "" {
		t.Fatalf("no Accept-Encoding: %d, Content-Encoding %q", plain.status, plain.header.Get("Content-Encoding"))
	}
	if len(plain.body) < minCompressSize {
		t.Fatalf("index page is %d bytes, too small to test with", len(plain.body))
	}
	if got := plain.header.Get("Content-Length"); got != strconv.Itoa(len(plain.body)) {
		t.Errorf("identity Content-Length %s, body %d", got, len(plain.body))
	}
	if !varies(plain.header, "Accept-Encoding") || !varies(plain.header, "Cookie") {
		t.Errorf("identity Vary %q", plain.header.Values("Vary"))
	}
	for _, tt := range []struct{ accept, want string }{
		{"gzip, deflate, br, zstd", "gzip"},
		{"gzip", "gzip"},
		{"br;q=0.9, gzip;q=0.1", "gzip"},
		{"br", ""}, // pages are never brotli-compressed
		{"identity", ""},
		{"identity, gzip;q=0.5", ""},
		{"br;q=0, gzip;q=0", ""},
		{"deflate", ""},
	} {
		r := s.browser().fetch("GET", "/", tt.accept)
		if r.status != 200 {
			t.Fatalf("%q: status %d", tt.accept, r.status)
		}
		if got := r.header.Get("Content-Encoding"); got != tt.want {
			t.Errorf("%q: Content-Encoding %q, want %q", tt.accept, got, tt.want)
		}
		if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(r.body)) {
			t.Errorf("%q: Content-Length %s, body %d", tt.accept, got, len(r.body))
		}
		if !varies(r.header, "Accept-Encoding") || !varies(r.header, "Cookie") {
			t.Errorf("%q: Vary %q", tt.accept, r.header.Values("Vary"))
		}
		if !bytes.Equal(r.decoded(t), plain.body) {
			t.Errorf("%q: decoded page differs from the identity page", tt.accept)
		}
		if tt.want != "" && len(r.body) >= len(plain.body)*2/3 {
			t.Errorf("%q: %d bytes of %d", tt.accept, len(r.body), len(plain.body))
		}
		// The security headers survive.
		if r.header.Get("Content-Security-Policy") == "" || r.header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("%q: headers %v", tt.accept, r.header)
		}
	}

	// HEAD: the headers of GET, no body.
	g := s.browser().fetch("GET", "/", "gzip")
	h := s.browser().fetch("HEAD", "/", "gzip")
	if h.status != 200 || len(h.body) != 0 || h.header.Get("Content-Encoding") != "gzip" || h.header.Get("Content-Length") != g.header.Get("Content-Length") {
		t.Errorf("HEAD: %d, %d bytes, Content-Encoding %q, Content-Length %q (GET: %q)",
			h.status, len(h.body), h.header.Get("Content-Encoding"), h.header.Get("Content-Length"), g.header.Get("Content-Length"))
	}

	// A page under the threshold goes as it is, still varying.
	nf := s.browser().fetch("GET", "/nope", "gzip")
	if nf.status != 404 {
		t.Fatalf("/nope: %d", nf.status)
	}
	if len(nf.body) >= minCompressSize {
		t.Logf("404 page is %d bytes: not a small page any more", len(nf.body))
	} else if nf.header.Get("Content-Encoding") != "" || !varies(nf.header, "Accept-Encoding") {
		t.Errorf("small page: Content-Encoding %q, Vary %q", nf.header.Get("Content-Encoding"), nf.header.Values("Vary"))
	}

	// Static files keep their own precompressed bodies: not compressed
	// twice, not held.
	assets, err := webclient.New()
	if err != nil {
		t.Fatal(err)
	}
	as, _ := assets.Asset("channel.js")
	st := s.browser().fetch("GET", assets.URL("channel.js"), "br")
	if st.header.Get("Content-Encoding") != "br" || !bytes.Equal(st.body, as.Encoded(compress.Brotli)) {
		t.Errorf("static file: Content-Encoding %q, %d bytes (want the %d precompressed)", st.header.Get("Content-Encoding"), len(st.body), len(as.Encoded(compress.Brotli)))
	}
	if vs := st.header.Values("Vary"); len(vs) != 1 {
		t.Errorf("static file: Vary %q", vs)
	}
}

// TestPageCompressionBREACH checks the rule that keeps pages safe from
// BREACH: only responses to requests without a session are compressed,
// and those carry no secret that a second response shares.
func TestPageCompressionBREACH(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, func(c *config.Config) {
		// Static TURN credentials: everyone's, so no secret.
		c.ICEServers = []config.ICEServer{{URLs: []string{"turn:turn.example.org:3478"}, Username: "u", Credential: "static"}}
	})
	ch := s.channel("Lobby", true, 0)
	path := "/c/" + ch.ID + "?q=" + url.QueryEscape(strings.Repeat("reflected ", 20))

	// A first visit: compressed, with a client made for this response.
	br := s.browser()
	first := br.fetch("GET", path, "gzip, br")
	if first.status != 200 || first.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("first visit: %d, Content-Encoding %q", first.status, first.header.Get("Content-Encoding"))
	}
	if br.sessionCookie() == "" {
		t.Fatal("first visit set no session cookie")
	}
	cfg1 := parseConfig(t, string(first.decoded(t)))

	// Every later request of that browser has the session, whose
	// client password the page repeats: never compressed, whatever the
	// query string echoed beside it.
	for _, accept := range []string{"gzip, br", "gzip", "*"} {
		again := br.fetch("GET", path, accept)
		if again.status != 200 || again.header.Get("Content-Encoding") != "" {
			t.Fatalf("%q with a session: %d, Content-Encoding %q", accept, again.status, again.header.Get("Content-Encoding"))
		}
		if c := parseConfig(t, string(again.body)); c.Password != cfg1.Password {
			t.Fatalf("the browser's client changed: %s, then %s", cfg1.ClientID, c.ClientID)
		}
	}

	// Sessionless responses never repeat a secret: each has its own
	// client, password and TURN credentials (when they are minted per
	// client), so compressing them gives an attacker nothing to
	// narrow down.
	seen := map[string]bool{cfg1.Password: true, cfg1.ClientID: true}
	for range 5 {
		r := s.browser().fetch("GET", path, "gzip")
		if r.header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("sessionless: Content-Encoding %q", r.header.Get("Content-Encoding"))
		}
		c := parseConfig(t, string(r.decoded(t)))
		for _, secret := range []string{c.Password, c.ClientID} {
			if seen[secret] {
				t.Fatalf("secret %q in two sessionless responses", secret)
			}
			seen[secret] = true
		}
	}

	// A signed-in user's pages (name, private channels) are not
	// compressed either.
	u := s.user("alice", "correct horse", false)
	alice := s.browser()
	alice.signIn("alice", "correct horse")
	for range 10 {
		s.channel("Alice's private channel", false, u.ID)
	}
	for _, p := range []string{"/", "/channels", "/signin?next=" + url.QueryEscape("/"+strings.Repeat("x", 900))} {
		r := alice.fetch("GET", p, "gzip, br")
		if r.header.Get("Content-Encoding") != "" {
			t.Errorf("signed in, %s: Content-Encoding %q", p, r.header.Get("Content-Encoding"))
		}
	}

	// Forms are answered uncompressed.
	req, _ := http.NewRequest("POST", s.ts.URL+"/signin", strings.NewReader("name=bob&password=wrong"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Client{Transport: rawTransport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("POST: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
}

// assetURLs lists the scripts and stylesheets a page loads from /static/.
var assetURLs = regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`)

// TestChannelPageTransfer measures what a first visit to the channel page
// transfers (the page, the script bundle and the stylesheet; bodies only, no
// headers) in each coding (asking for br gets the page itself gzipped);
// the README quotes its log. Run it with -v.
func TestChannelPageTransfer(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	ch := s.channel("Lobby", true, 0)
	var prev int
	for _, tt := range []struct{ accept, name string }{{"", "identity"}, {"gzip", "gzip"}, {"gzip, br", "br"}} {
		accept, name := tt.accept, tt.name
		br := s.browser()
		page := br.fetch("GET", "/c/"+ch.ID, accept)
		if page.status != 200 {
			t.Fatalf("page: %d", page.status)
		}
		total, assets := len(page.body), 0
		refs := assetURLs.FindAllStringSubmatch(string(page.decoded(t)), -1)
		if len(refs) < 2 {
			t.Fatalf("page loads %d files", len(refs))
		}
		for _, m := range refs {
			r := br.fetch("GET", m[1], accept)
			if r.status != 200 {
				t.Fatalf("%s: %d", m[1], r.status)
			}
			assets += len(r.body)
		}
		total += assets
		t.Logf("channel page, first visit, %-8s HTML %5d + %d files %6d = %6d bytes", name, len(page.body), len(refs), assets, total)
		if prev != 0 && total >= prev {
			t.Errorf("%s: %d bytes, not less than the previous coding's %d", name, total, prev)
		}
		prev = total
	}
}

// BenchmarkPageCompression measures compressing a channel page (as
// rendered for a first visit) per response, at the level compressPages
// uses and others it might, with the size reached.
func BenchmarkPageCompression(b *testing.B) {
	s := newSite(b, storetest.SQLite(b).Store, nil)
	ch := s.channel("Lobby", true, 0)
	page := s.browser().fetch("GET", "/c/"+ch.ID, "").body
	for _, tt := range []struct {
		coding string
		level  int
	}{
		{compress.Gzip, pageGzipLevel}, {compress.Gzip, 6}, {compress.Gzip, 9},
		{compress.Brotli, 1}, {compress.Brotli, 4}, {compress.Brotli, 6}, {compress.Brotli, 11},
	} {
		enc, err := compress.NewEncoder(tt.coding, tt.level)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tt.coding+"-"+strconv.Itoa(tt.level), func(b *testing.B) {
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				if err := enc.Encode(&out, page); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out.Len()), "bytes")
			b.ReportMetric(float64(out.Len())/float64(len(page)), "ratio")
		})
	}
}

// BenchmarkFirstVisit serves the channel page to new browsers over HTTP,
// uncompressed and compressed, to show what compressing adds per page.
func BenchmarkFirstVisit(b *testing.B) {
	s := newSite(b, storetest.SQLite(b).Store, nil)
	ch := s.channel("Lobby", true, 0)
	for _, accept := range []string{"", "gzip"} {
		name := accept
		if name == "" {
			name = "identity"
		}
		b.Run(name, func(b *testing.B) {
			var n int
			for b.Loop() {
				br := s.browser()
				br.t = b
				r := br.fetch("GET", "/c/"+ch.ID, accept)
				if r.status != 200 {
					b.Fatal(r.status)
				}
				n = len(r.body)
			}
			b.ReportMetric(float64(n), "bytes")
		})
	}
}

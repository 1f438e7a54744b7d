package fsapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func testEndpoint(opts Options) http.Handler {
	reg := NewRegistry(nil)
	reg.Add(&fixed{name: "dir", pairs: []Pair{{"section", "directory"}}})
	reg.Add(&fixed{name: "report", pairs: []Pair{{"action", ActionClientLogin}}})
	reg.Add(&fixed{name: "disconnect", pairs: []Pair{{"action", ActionClientDisconnect}}})
	reg.Add(&fixed{name: "secret-seen", pairs: []Pair{{SecretField, "pw"}}})
	if opts.User == "" {
		opts.User = "fs"
	}
	return NewHandler(reg, opts)
}

type reqSpec struct {
	method      string
	path        string
	remote      string
	user, pass  string // basic credentials when user != ""
	rawAuth     string // Authorization header as is
	contentType string
	body        string
}

func (s reqSpec) build() *http.Request {
	if s.method == "" {
		s.method = http.MethodPost
	}
	if s.path == "" {
		s.path = "/fsapi"
	}
	r := httptest.NewRequest(s.method, s.path, strings.NewReader(s.body))
	r.RemoteAddr = s.remote
	if r.RemoteAddr == "" {
		r.RemoteAddr = "127.0.0.1:5555"
	}
	if s.user != "" {
		r.SetBasicAuth(s.user, s.pass)
	}
	if s.rawAuth != "" {
		r.Header.Set("Authorization", s.rawAuth)
	}
	if s.contentType == "" {
		s.contentType = "application/x-www-form-urlencoded"
	}
	if s.contentType != "-" {
		r.Header.Set("Content-Type", s.contentType)
	}
	return r
}

func TestEndpointStatus(t *testing.T) {
	dir := "section=directory&value=x"
	report := "action=verto_client_login&login=a&secret=pw"
	tests := []struct {
		name    string
		opts    Options
		req     reqSpec
		status  int
		section string // for 200: the answering handler; "result" = not found
	}{
		{"good", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw", body: dir}, 200, "dir"},
		{"no content type", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw", body: dir, contentType: "-"}, 200, "dir"},
		{"content type with charset", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw", body: dir, contentType: "application/x-www-form-urlencoded; charset=utf-8"}, 200, "dir"},
		{"GET", Options{Password: "pw"}, reqSpec{method: "GET", user: "fs", pass: "pw"}, 405, ""},
		{"PUT", Options{Password: "pw"}, reqSpec{method: "PUT", user: "fs", pass: "pw", body: dir}, 405, ""},
		{"no credentials", Options{Password: "pw"}, reqSpec{body: dir}, 401, ""},
		{"wrong password", Options{Password: "pw"}, reqSpec{user: "fs", pass: "px", body: dir}, 401, ""},
		{"wrong user", Options{Password: "pw"}, reqSpec{user: "fx", pass: "pw", body: dir}, 401, ""},
		{"garbage Authorization", Options{Password: "pw"}, reqSpec{rawAuth: "Bearer x", body: dir}, 401, ""},
		{"Authorization wins over secret", Options{Password: "pw"}, reqSpec{user: "fs", pass: "bad", body: report}, 401, ""},
		{"empty password refuses all", Options{}, reqSpec{user: "fs", pass: "", body: dir}, 401, ""},
		{"empty password refuses empty secret", Options{}, reqSpec{body: "action=verto_client_login&secret="}, 401, ""},
		{"report with secret", Options{Password: "pw"}, reqSpec{body: report}, 200, "report"},
		{"disconnect with secret", Options{Password: "pw"}, reqSpec{body: "action=verto_client_disconnect&secret=pw"}, 200, "disconnect"},
		{"report with wrong secret", Options{Password: "pw"}, reqSpec{body: "action=verto_client_login&secret=px"}, 401, ""},
		{"report without secret", Options{Password: "pw"}, reqSpec{body: "action=verto_client_login"}, 401, ""},
		{"secret does not open the directory", Options{Password: "pw"}, reqSpec{body: dir + "&secret=pw"}, 401, ""},
		{"secret does not open other actions", Options{Password: "pw"}, reqSpec{body: "action=jsonrpc-authenticate&section=directory&secret=pw"}, 401, ""},
		{"secret removed before handlers", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw", body: "secret=pw"}, 200, "result"},
		{"report with secret from another network", Options{Password: "pw"}, reqSpec{remote: "192.0.2.1:1", body: report}, 403, ""},
		{"other network", Options{Password: "pw"}, reqSpec{remote: "10.1.2.3:40000", user: "fs", pass: "pw", body: dir}, 403, ""},
		{"IPv6 loopback default", Options{Password: "pw"}, reqSpec{remote: "[::1]:40000", user: "fs", pass: "pw", body: dir}, 200, "dir"},
		{"IPv4-mapped loopback", Options{Password: "pw"}, reqSpec{remote: "[::ffff:127.0.0.1]:40000", user: "fs", pass: "pw", body: dir}, 200, "dir"},
		{"configured network", Options{Password: "pw", Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, reqSpec{remote: "10.1.2.3:40000", user: "fs", pass: "pw", body: dir}, 200, "dir"},
		{"configured network excludes loopback", Options{Password: "pw", Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, reqSpec{user: "fs", pass: "pw", body: dir}, 403, ""},
		{"empty network list allows none", Options{Password: "pw", Networks: []netip.Prefix{}}, reqSpec{user: "fs", pass: "pw", body: dir}, 403, ""},
		{"unparsable peer", Options{Password: "pw"}, reqSpec{remote: "@unix", user: "fs", pass: "pw", body: dir}, 403, ""},
		{"bad escape", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw", body: "section=%zz"}, 400, ""},
		{"semicolon", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw", body: "section=directory;x=1"}, 400, ""},
		{"multipart", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw", body: dir, contentType: "multipart/form-data; boundary=x"}, 400, ""},
		{"JSON", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw", body: `{"section":"directory"}`, contentType: "application/json"}, 400, ""},
		{"too large", Options{Password: "pw", MaxBody: 100}, reqSpec{user: "fs", pass: "pw", body: dir + "&pad=" + strings.Repeat("x", 100)}, 413, ""},
		{"just fits", Options{Password: "pw", MaxBody: 100}, reqSpec{user: "fs", pass: "pw", body: dir + "&pad=" + strings.Repeat("x", 100-len(dir)-5)}, 200, "dir"},
		{"default limit", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw", body: dir + "&pad=" + strings.Repeat("x", DefaultMaxBody)}, 413, ""},
		{"unknown sub-path", Options{Password: "pw"}, reqSpec{path: "/fsapi/other", user: "fs", pass: "pw", body: dir}, 200, "result"},
		{"trailing slash", Options{Password: "pw"}, reqSpec{path: "/fsapi/", user: "fs", pass: "pw", body: dir}, 200, "result"},
		{"sub-path still needs credentials", Options{Password: "pw"}, reqSpec{path: "/fsapi/x", body: dir}, 401, ""},
		{"configured path", Options{Password: "pw", Path: "/"}, reqSpec{path: "/", user: "fs", pass: "pw", body: dir}, 200, "dir"},
		{"hostname matches", Options{Password: "pw", Hostname: "fs1"}, reqSpec{user: "fs", pass: "pw", body: dir + "&hostname=fs1"}, 200, "dir"},
		{"hostname differs", Options{Password: "pw", Hostname: "fs1"}, reqSpec{user: "fs", pass: "pw", body: dir + "&hostname=fs2"}, 200, "result"},
		{"hostname missing", Options{Password: "pw", Hostname: "fs1"}, reqSpec{user: "fs", pass: "pw", body: dir}, 200, "result"},
		{"report from other host", Options{Password: "pw", Hostname: "fs1"}, reqSpec{body: report + "&hostname=fs2"}, 200, "result"},
		{"no match", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw", body: "section=dialplan"}, 200, "result"},
		{"empty body", Options{Password: "pw"}, reqSpec{user: "fs", pass: "pw"}, 200, "result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			testEndpoint(tt.opts).ServeHTTP(w, tt.req.build())
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %s", res.StatusCode, tt.status, body)
			}
			switch tt.status {
			case 200:
				if ct := res.Header.Get("Content-Type"); ct != "text/xml" {
					t.Errorf("Content-Type %q", ct)
				}
				if got := sectionName(t, body); got != tt.section {
					t.Errorf("answered by %q, want %q", got, tt.section)
				}
				if tt.section == "result" && !bytes.Equal(body, NotFound()) {
					t.Errorf("got %s, want the not-found document", body)
				}
			case 401:
				if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
				}
			case 405:
				if res.Header.Get("Allow") != "POST" {
					t.Errorf("Allow %q", res.Header.Get("Allow"))
				}
			}
			if tt.status != 200 && strings.Contains(string(body), "<document") {
				t.Errorf("error answer carries a document: %s", body)
			}
		})
	}
}

// TestEndpointOverTCP runs the endpoint behind a real server, with the
// client's real address.
func TestEndpointOverTCP(t *testing.T) {
	srv := httptest.NewServer(testEndpoint(Options{Password: "pw"}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/fsapi")
	u.User = url.UserPassword("fs", "pw")
	res, err := http.PostForm(u.String(), url.Values{"section": {"directory"}, "value": {`<&>"'`}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(body), `value="&lt;&amp;&gt;&quot;&apos;"`) {
		t.Fatalf("status %d body %s", res.StatusCode, body)
	}
}

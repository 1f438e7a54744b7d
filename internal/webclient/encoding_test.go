package webclient

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"

	"channels/internal/compress"
)

// get asks the handler for path with the given request headers (pairs of
// name and value).
func get(t *testing.T, h http.Handler, method, path string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeBody(t *testing.T, coding string, b []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	switch coding {
	case "":
		return b
	case compress.Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case compress.Brotli:
		r = brotli.NewReader(r)
	default:
		t.Fatalf("unexpected Content-Encoding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", coding, err)
	}
	return out
}

// TestEncodedAssets fetches every served file in every coding and checks
// that the bytes decode to the identity bytes, with the headers a cache
// needs.
func TestEncodedAssets(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	for _, as := range a.Files() { // the bundles' chunks too
		n, u := as.HashedName, Prefix+as.HashedName
		etags := map[string]string{}
		for _, tt := range []struct{ accept, want string }{
			{"", ""}, // no Accept-Encoding at all
			{"gzip", compress.Gzip},
			{"br", compress.Brotli},
			{"identity", ""},
		} {
			var rec *httptest.ResponseRecorder
			if tt.accept == "" {
				rec = get(t, h, "GET", u)
			} else {
				rec = get(t, h, "GET", u, "Accept-Encoding", tt.accept)
			}
			if rec.Code != 200 {
				t.Fatalf("%s %q: status %d", n, tt.accept, rec.Code)
			}
			ce := rec.Header().Get("Content-Encoding")
			if tt.want != "" && as.Encoded(tt.want) == nil {
				tt.want = "" // not smaller, so not served
			}
			if ce != tt.want {
				t.Errorf("%s %q: Content-Encoding %q, want %q", n, tt.accept, ce, tt.want)
			}
			if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("%s %q: Content-Length %s, body %d bytes", n, tt.accept, got, rec.Body.Len())
			}
			if got := rec.Header().Values("Vary"); len(got) != 1 || got[0] != "Accept-Encoding" {
				t.Errorf("%s %q: Vary %q", n, tt.accept, got)
			}
			if !bytes.Equal(decodeBody(t, ce, rec.Body.Bytes()), as.Body) {
				t.Errorf("%s %q: decoded body differs from the identity body", n, tt.accept)
			}
			if ce != "" && rec.Body.Len() >= len(as.Body) {
				t.Errorf("%s: %s body %d bytes, identity %d", n, ce, rec.Body.Len(), len(as.Body))
			}
			if ce != "" && rec.Header().Get("Accept-Ranges") != "" {
				t.Errorf("%s: %s response offers ranges", n, ce)
			}
			etag := rec.Header().Get("ETag")
			if prev, ok := etags[etag]; ok && prev != ce {
				t.Errorf("%s: ETag %s for both %q and %q", n, etag, prev, ce)
			}
			etags[etag] = ce

			// The same representation's ETag revalidates it: 304,
			// still varying by Accept-Encoding, no body.
			hdrs := []string{"If-None-Match", etag}
			if tt.accept != "" {
				hdrs = append(hdrs, "Accept-Encoding", tt.accept)
			}
			nm := get(t, h, "GET", u, hdrs...)
			if nm.Code != 304 || nm.Body.Len() != 0 {
				t.Errorf("%s %q: If-None-Match %s: %d, %d bytes", n, tt.accept, etag, nm.Code, nm.Body.Len())
			}
			if got := nm.Header().Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("%s %q: 304 Vary %q", n, tt.accept, got)
			}
		}
	}
}

// TestNegotiation checks which representation requests get, on the
// largest module (where both codings are kept).
func TestNegotiation(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	as, _ := a.Asset("channel.js")
	br, gz := as.Encoded(compress.Brotli), as.Encoded(compress.Gzip)
	if br == nil || gz == nil || len(br) >= len(gz) {
		t.Fatalf("channel.js: brotli %d bytes, gzip %d, identity %d", len(br), len(gz), len(as.Body))
	}
	t.Logf("channel.js: identity %d, gzip %d, brotli %d bytes", len(as.Body), len(gz), len(br))
	for _, tt := range []struct{ accept, want string }{
		{"gzip, deflate, br, zstd", "br"},
		{"gzip", "gzip"},
		{"gzip;q=1, br;q=0.5", "gzip"},
		{"br;q=0, gzip", "gzip"},
		{"*", "br"},
		{"*;q=0", ""},
		{"identity;q=0", ""},
		{"identity, gzip;q=0.5", ""},
		{"deflate", ""},
		{"GZIP", "gzip"},
		{"x-gzip", "gzip"},
		{"gzip;q=0", ""},
		{"br;q=2", ""}, // malformed: unlisted
	} {
		rec := get(t, a.Handler(), "GET", a.URL("channel.js"), "Accept-Encoding", tt.accept)
		if got := rec.Header().Get("Content-Encoding"); got != tt.want {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", tt.accept, got, tt.want)
		}
	}
}

// TestEncodedHeadAndRange checks HEAD (the headers of GET, no body) and
// Range requests (always the identity representation, so the parts a
// client puts together are of one sequence of bytes).
func TestEncodedHeadAndRange(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	u := a.URL("channel.js")
	as, _ := a.Asset("channel.js")

	g := get(t, h, "GET", u, "Accept-Encoding", "br")
	hd := get(t, h, "HEAD", u, "Accept-Encoding", "br")
	if hd.Code != 200 || hd.Body.Len() != 0 {
		t.Fatalf("HEAD: %d, %d bytes", hd.Code, hd.Body.Len())
	}
	for _, k := range []string{"Content-Encoding", "Content-Length", "ETag", "Vary", "Content-Type", "Cache-Control"} {
		if hd.Header().Get(k) != g.Header().Get(k) || g.Header().Get(k) == "" {
			t.Errorf("HEAD %s = %q, GET %q", k, hd.Header().Get(k), g.Header().Get(k))
		}
	}

	r := get(t, h, "GET", u, "Accept-Encoding", "gzip, br", "Range", "bytes=0-9")
	if r.Code != http.StatusPartialContent {
		t.Fatalf("Range: status %d", r.Code)
	}
	if ce := r.Header().Get("Content-Encoding"); ce != "" {
		t.Errorf("Range: Content-Encoding %q", ce)
	}
	if got, want := r.Header().Get("Content-Range"), "bytes 0-9/"+strconv.Itoa(len(as.Body)); got != want {
		t.Errorf("Content-Range %q, want %q", got, want)
	}
	if !bytes.Equal(r.Body.Bytes(), as.Body[:10]) || r.Header().Get("Content-Length") != "10" {
		t.Errorf("Range body %q, Content-Length %s", r.Body.Bytes(), r.Header().Get("Content-Length"))
	}
	if r.Header().Get("Vary") != "Accept-Encoding" || r.Header().Get("ETag") != as.etag {
		t.Errorf("Range: Vary %q, ETag %q", r.Header().Get("Vary"), r.Header().Get("ETag"))
	}
	// If-Range naming the brotli representation does not match the
	// identity one: the whole identity body, not a part.
	ir := get(t, h, "GET", u, "Accept-Encoding", "br", "Range", "bytes=0-9", "If-Range", g.Header().Get("ETag"))
	if ir.Code != 200 || !bytes.Equal(ir.Body.Bytes(), as.Body) {
		t.Errorf("If-Range with the brotli ETag: %d, %d bytes", ir.Code, ir.Body.Len())
	}
	bad := get(t, h, "GET", u, "Range", "bytes=999999-")
	if bad.Code != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable range: %d", bad.Code)
	}
	// The identity ETag does not revalidate a brotli response.
	if rec := get(t, h, "GET", u, "Accept-Encoding", "br", "If-None-Match", as.etag); rec.Code != 200 {
		t.Errorf("identity ETag for a brotli request: %d", rec.Code)
	}
}

// TestSmallFileNotEncoded: a coding that would not make a file smaller is
// not kept, and the file is served as it is.
func TestSmallFileNotEncoded(t *testing.T) {
	a, err := load(fstest.MapFS{
		"a.css": {Data: []byte("a{}")},
		"b.js":  {Data: []byte("export const text = '" + strings.Repeat("compressible ", 100) + "';\n")},
	}, []string{"b.js"})
	if err != nil {
		t.Fatal(err)
	}
	small, _ := a.Asset("a.css")
	if small.Encoded(compress.Gzip) != nil || small.Encoded(compress.Brotli) != nil {
		t.Errorf("a.css (%d bytes) kept encodings", len(small.Body))
	}
	rec := get(t, a.Handler(), "GET", a.URL("a.css"), "Accept-Encoding", "gzip, br")
	if rec.Header().Get("Content-Encoding") != "" || rec.Body.String() != string(small.Body) {
		t.Errorf("a.css: Content-Encoding %q, body %q", rec.Header().Get("Content-Encoding"), rec.Body)
	}
	if rec.Header().Get("Vary") != "Accept-Encoding" {
		t.Errorf("a.css: Vary %q", rec.Header().Get("Vary"))
	}
	big, _ := a.Asset("b.js")
	if big.Encoded(compress.Gzip) == nil || big.Encoded(compress.Brotli) == nil {
		t.Errorf("b.js (%d bytes) lacks encodings", len(big.Body))
	}
}

// BenchmarkLoad measures the start-up work New does once: bundling,
// minifying and compressing.
func BenchmarkLoad(b *testing.B) {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := load(sub, entryPoints); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNewOnce(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := New(); a != b {
		t.Errorf("New prepared the files twice")
	}
}

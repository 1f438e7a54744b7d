package compress

import (
	"net/http"
	"strings"
	"testing"
)

// header builds a request header with one Accept-Encoding field per value;
// nil means none at all.
func header(values ...string) http.Header {
	h := http.Header{}
	for _, v := range values {
		h.Add("Accept-Encoding", v)
	}
	return h
}

func TestChoose(t *testing.T) {
	both := []string{Brotli, Gzip}
	tests := []struct {
		name   string
		fields []string
		offers []string
		want   string
	}{
		{"no header", nil, both, Identity},
		{"empty header", []string{""}, both, Identity},
		{"browser", []string{"gzip, deflate, br, zstd"}, both, Brotli},
		{"server order on a tie", []string{"gzip, br"}, both, Brotli},
		{"server order, other way", []string{"br, gzip"}, []string{Gzip, Brotli}, Gzip},
		{"only gzip offered", []string{"gzip, br"}, []string{Gzip}, Gzip},
		{"nothing offered", []string{"gzip, br"}, nil, Identity},
		{"unknown offer ignored", []string{"*"}, []string{"zstd"}, Identity},
		{"gzip only", []string{"gzip"}, both, Gzip},
		{"x-gzip", []string{"x-gzip"}, both, Gzip},
		{"case", []string{"GZip;Q=1"}, both, Gzip},
		{"higher weight wins", []string{"br;q=0.5, gzip;q=0.8"}, both, Gzip},
		{"q=0 refuses", []string{"br;q=0, gzip"}, both, Gzip},
		{"q=0.000 refuses", []string{"br;q=0.000, gzip;q=0.001"}, both, Gzip},
		{"all refused", []string{"br;q=0, gzip;q=0"}, both, Identity},
		{"star", []string{"*"}, both, Brotli},
		{"star with a refusal", []string{"*, br;q=0"}, both, Gzip},
		{"star refused", []string{"*;q=0"}, both, Identity},
		{"star refused, gzip listed", []string{"*;q=0, gzip"}, both, Gzip},
		{"identity preferred", []string{"identity, gzip;q=0.5"}, both, Identity},
		{"identity tie goes to coding", []string{"identity;q=0.5, gzip;q=0.5"}, both, Gzip},
		{"identity unlisted ranks lowest", []string{"gzip;q=0.001"}, both, Gzip},
		{"star weighs identity", []string{"*;q=0.9, gzip;q=0.5"}, both, Brotli},
		{"star weighs identity over gzip", []string{"*;q=0.9, br;q=0.2, gzip;q=0.5"}, both, Identity},
		{"identity only", []string{"identity"}, both, Identity},
		{"identity refused, nothing else", []string{"identity;q=0"}, both, Identity},
		{"whitespace", []string{"  gzip ;  q=0.7 ,\tbr ; q = 0.6 "}, both, Gzip},
		{"empty elements", []string{",,gzip,,"}, both, Gzip},
		{"two fields", []string{"gzip;q=0.5", "br;q=0.6"}, both, Brotli},
		{"listed twice: lower wins", []string{"br, br;q=0, gzip"}, both, Gzip},
		{"malformed q: unlisted", []string{"br;q=2, gzip;q=0.5"}, both, Gzip},
		{"q above 1", []string{"br;q=1.001, gzip"}, both, Gzip},
		{"q with four digits", []string{"br;q=0.0001, gzip"}, both, Gzip},
		{"q with sign", []string{"br;q=+1, gzip"}, both, Gzip},
		{"q without value", []string{"br;q, gzip"}, both, Gzip},
		{"q empty", []string{"br;q=, gzip"}, both, Gzip},
		{"other parameter", []string{"br;level=3"}, both, Brotli},
		{"quoted comma hides nothing", []string{`foo;x=",br", gzip;q=0.2`}, both, Gzip},
		{"escaped quote", []string{`foo;x="a\",br", gzip;q=0.2`}, both, Gzip},
		{"unterminated quote", []string{`foo;x=",br`}, both, Identity},
		{"garbage", []string{";;;,,,=;q"}, both, Identity},
		{"coding prefix is not the coding", []string{"gzipx, brr"}, both, Identity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseAccept(header(tt.fields...)).Choose(tt.offers...); got != tt.want {
				t.Errorf("Choose(%q) with %q = %q, want %q", tt.offers, tt.fields, got, tt.want)
			}
		})
	}
}

func TestAcceptable(t *testing.T) {
	tests := []struct {
		fields             []string
		identity, gzip, br bool
	}{
		{nil, true, false, false},
		{[]string{""}, true, false, false},
		{[]string{"gzip"}, true, true, false},
		{[]string{"identity;q=0, gzip"}, false, true, false},
		{[]string{"*;q=0"}, false, false, false},
		{[]string{"*;q=0, identity"}, true, false, false},
		{[]string{"*"}, true, true, true},
		{[]string{"*;q=0.1, br;q=0"}, true, true, false},
	}
	for _, tt := range tests {
		a := ParseAccept(header(tt.fields...))
		for _, c := range []struct {
			coding string
			want   bool
		}{{Identity, tt.identity}, {Gzip, tt.gzip}, {Brotli, tt.br}} {
			if got := a.Acceptable(c.coding); got != c.want {
				t.Errorf("%q: Acceptable(%s) = %v, want %v", tt.fields, c.coding, got, c.want)
			}
		}
	}
}

func TestQvalue(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "1": 1000, "0.5": 500, "0.05": 50, "0.123": 123, "1.0": 1000, "1.000": 1000, "0.": 0, "1.": 1000} {
		if got, ok := qvalue(in); !ok || got != want {
			t.Errorf("qvalue(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "2", "1.001", "1.1", "0.1234", ".5", "-0", "0,5", "0.5a", "01", "1e0"} {
		if got, ok := qvalue(in); ok {
			t.Errorf("qvalue(%q) = %d, want malformed", in, got)
		}
	}
}

func TestParseAcceptAllocs(t *testing.T) {
	h := header("gzip;q=0.8, deflate, br;q=0.9, zstd, *;q=0.1, identity")
	if n := testing.AllocsPerRun(100, func() { ParseAccept(h).Choose(Brotli, Gzip) }); n != 0 {
		t.Errorf("%v allocations per negotiation, want 0", n)
	}
}

// reference is a second, plainer reading of Accept-Encoding for the fuzz
// test: the same rules, by splitting on commas and semicolons, so it only
// holds for values without quoted strings.
func reference(values []string, offers []string) string {
	q := map[string]int{}
	for _, v := range values {
		for _, e := range strings.Split(v, ",") {
			parts := strings.Split(e, ";")
			c := strings.ToLower(strings.TrimSpace(parts[0]))
			if c == "x-gzip" {
				c = "gzip"
			}
			w, ok := 1000, true
			for _, p := range parts[1:] {
				k, val, has := strings.Cut(p, "=")
				if strings.ToLower(strings.TrimSpace(k)) != "q" {
					continue
				}
				if !has {
					ok = false
					break
				}
				if w, ok = qvalue(strings.TrimSpace(val)); !ok {
					break
				}
			}
			if c == "" || !ok {
				continue
			}
			if old, seen := q[c]; !seen || w < old {
				q[c] = w
			}
		}
	}
	weight := func(c string) (int, bool) {
		if w, ok := q[c]; ok {
			return w, true
		}
		w, ok := q["*"]
		return w, ok
	}
	best, bestQ := Identity, 0
	if w, ok := weight("identity"); ok {
		bestQ = w
	}
	if len(values) == 0 {
		return Identity
	}
	for _, c := range offers {
		if c != Gzip && c != Brotli {
			continue
		}
		if w, _ := weight(c); w > 0 && (w > bestQ || (w == bestQ && best == Identity)) {
			best, bestQ = c, w
		}
	}
	return best
}

// FuzzAccept checks that any header parses without panicking, that the
// choice is always an offer the header accepts or identity, and, for
// headers without quoted strings, that it agrees with reference.
func FuzzAccept(f *testing.F) {
	for _, s := range []string{"", "gzip, deflate, br, zstd", "br;q=0, gzip;q=0.5", "*;q=0, identity", `a;b="c,d", br`, "GZIP;Q=0.001", "x-gzip, identity;q=0"} {
		f.Add(s, "")
		f.Add(s, "br;q=0.9")
	}
	f.Fuzz(func(t *testing.T, v1, v2 string) {
		values := []string{v1}
		if v2 != "" {
			values = append(values, v2)
		}
		a := ParseAccept(header(values...))
		for _, offers := range [][]string{{Brotli, Gzip}, {Gzip, Brotli}, {Gzip}, nil} {
			got := a.Choose(offers...)
			if got != Identity {
				found := false
				for _, o := range offers {
					found = found || o == got
				}
				if !found || !a.Acceptable(got) {
					t.Fatalf("%q: Choose(%q) = %q, not an acceptable offer", values, offers, got)
				}
			}
			if !strings.ContainsAny(v1+v2, `"\`) {
				if want := reference(values, offers); got != want {
					t.Fatalf("%q: Choose(%q) = %q, reference says %q", values, offers, got, want)
				}
			}
		}
	})
}

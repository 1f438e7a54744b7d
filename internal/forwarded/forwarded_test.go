package forwarded

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

var proxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func TestClientAddr(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer string
		xff  []string
		want string // "" for no change
	}{
		{"untrusted peer keeps its address", "192.0.2.1:5000", []string{"198.51.100.7"}, ""},
		{"trusted peer, no header", "10.0.0.2:5000", nil, ""},
		{"trusted peer, one client", "10.0.0.2:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"client-written entries on the left are ignored", "10.0.0.2:5000", []string{"1.2.3.4, 198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted proxies", "10.0.0.2:5000", []string{"198.51.100.7, 10.1.1.1"}, "198.51.100.7"},
		{"several header lines", "10.0.0.2:5000", []string{"203.0.113.9", "198.51.100.7, 10.1.1.1"}, "198.51.100.7"},
		{"IPv6 proxy and client", "[::1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4-mapped client", "10.0.0.2:5000", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"garbage entry", "10.0.0.2:5000", []string{"198.51.100.7, not-an-ip"}, ""},
		{"only proxies", "10.0.0.2:5000", []string{"10.9.9.9"}, ""},
		{"malformed peer", "nonsense", []string{"198.51.100.7"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ClientAddr(tc.peer, tc.xff, proxies)
			if tc.want == "" {
				if ok {
					t.Fatalf("ClientAddr = %v, want no change", got)
				}
				return
			}
			if !ok || got.String() != tc.want {
				t.Fatalf("ClientAddr = %v, %v; want %s", got, ok, tc.want)
			}
		})
	}
}

func TestHandler(t *testing.T) {
	var seen string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr })
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.2:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.7")
	Handler(proxies, next).ServeHTTP(httptest.NewRecorder(), r)
	if seen != "198.51.100.7:0" {
		t.Errorf("RemoteAddr behind a trusted proxy = %q", seen)
	}
	Handler(nil, next).ServeHTTP(httptest.NewRecorder(), r)
	if seen != "10.0.0.2:5000" {
		t.Errorf("RemoteAddr with no trusted proxies = %q", seen)
	}
}

func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.2:5000", "198.51.100.7, 10.1.1.1")
	f.Add("[::1]:1", "::ffff:1.2.3.4%eth0")
	f.Add("10.0.0.2:5000", ",,,")
	f.Fuzz(func(t *testing.T, peer, xff string) {
		a, ok := ClientAddr(peer, []string{xff}, proxies)
		if ok && (!a.IsValid() || isTrusted(a, proxies)) {
			t.Fatalf("ClientAddr(%q, %q) = %v: not a client address", peer, xff, a)
		}
	})
}

func TestLimitKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7:4242", "192.0.2.7"},
		{"192.0.2.7", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::9%eth0]:443", "2001:db8:1:2::/64"},
		{"not an address", "not an address"},
	} {
		if got := LimitKey(tc.in); got != tc.want {
			t.Errorf("LimitKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLimitAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
	}
	for _, tt := range tests {
		if got := LimitAddr(netip.MustParseAddr(tt.in)).String(); got != tt.want {
			t.Errorf("LimitAddr(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

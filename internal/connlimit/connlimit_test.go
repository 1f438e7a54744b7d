package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// dialFrom connects to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer reports whether the server closed c (a read ends in EOF or
// a reset) rather than holding it open for wait.
func closedByPeer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestCaps(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		// dials, in order, from these loopback addresses
		from []string
		// which of them the listener keeps
		kept []bool
	}{
		{
			name: "per address",
			opts: Options{MaxPerAddr: 2, MaxTotal: 100},
			from: []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.2"},
			kept: []bool{true, true, false, true, true, false},
		},
		{
			name: "total",
			opts: Options{MaxPerAddr: 10, MaxTotal: 3},
			from: []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"},
			kept: []bool{true, true, true, false},
		},
		{
			name: "exempt proxy counts only toward the total",
			opts: Options{MaxPerAddr: 1, MaxTotal: 4, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}},
			from: []string{"127.0.0.9", "127.0.0.9", "127.0.0.9", "127.0.0.1", "127.0.0.1"},
			kept: []bool{true, true, true, true, false},
		},
		{
			name: "no caps",
			opts: Options{MaxPerAddr: -1, MaxTotal: -1},
			from: []string{"127.0.0.1", "127.0.0.1", "127.0.0.1"},
			kept: []bool{true, true, true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := New(inner, tt.opts)
			defer l.Close()
			accepted := make(chan net.Conn, len(tt.from))
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					accepted <- c
				}
			}()
			// One dial at a time, each either accepted or closed, so the
			// outcome does not depend on scheduling.
			var kept []net.Conn
			for i, from := range tt.from {
				c := dialFrom(t, from, inner.Addr().String())
				closed := make(chan bool, 1)
				go func() { closed <- closedByPeer(c, 5*time.Second) }()
				select {
				case sc := <-accepted:
					kept = append(kept, sc)
					if !tt.kept[i] {
						t.Errorf("dial %d from %s kept, want refused", i, from)
					}
				case <-closed:
					if tt.kept[i] {
						t.Errorf("dial %d from %s refused, want kept", i, from)
					}
				}
			}
			n := 0
			for _, k := range tt.kept {
				if k {
					n++
				}
			}
			if total, _ := l.Open(netip.MustParseAddr("127.0.0.1")); total != n {
				t.Errorf("%d open, want %d", total, n)
			}
			// Closing (twice, as net/http may) frees the places once.
			for _, c := range kept {
				c.Close()
				c.Close()
			}
			if total, per := l.Open(netip.MustParseAddr("127.0.0.1")); total != 0 || per != 0 {
				t.Errorf("after closing all: total %d, per address %d", total, per)
			}
			l.mu.Lock()
			tracked := len(l.perAddr)
			l.mu.Unlock()
			if tracked != 0 {
				t.Errorf("after closing all: %d addresses tracked", tracked)
			}
			// And a new connection is welcome again.
			dialFrom(t, tt.from[0], inner.Addr().String())
			select {
			case sc := <-accepted:
				sc.Close()
			case <-time.After(5 * time.Second):
				t.Error("connection after closing all was not accepted")
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(inner, Options{})
	defer l.Close()
	o := l.Options()
	if o.MaxPerAddr != DefaultMaxPerAddr || o.MaxTotal != DefaultMaxTotal() || o.MaxTotal < minTotal {
		t.Errorf("defaults: %+v", o)
	}
	if n, ok := nofile(); ok && uint64(o.MaxTotal) >= n {
		t.Errorf("total cap %d not under the descriptor limit %d", o.MaxTotal, n)
	}
	// Errors of the wrapped listener come through.
	inner.Close()
	if _, err := l.Accept(); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("Accept on a closed listener: %v", err)
	}
}

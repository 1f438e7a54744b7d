package cli

import (
	"net"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServeFailureStopsApp: when serve fails after the app is assembled
// (its listen address taken, or the metrics listener's), it returns the
// error and leaves nothing running: no goroutine of the app (hub,
// sweeper) and no listener (the public port can be bound again).
func TestServeFailureStopsApp(t *testing.T) {
	for _, tc := range []struct {
		name, busy string // busy: which address another process holds
		want       string
	}{
		{"listen address in use", "listen", "listen on"},
		{"metrics address in use", "metrics", "listen for metrics on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			addr, maddr := freeAddr(t), freeAddr(t)
			if tc.busy == "listen" {
				addr = taken.Addr().String()
			} else {
				maddr = taken.Addr().String()
			}
			vars := map[string]string{
				"CHANNELS_DATA_DIR":       t.TempDir(),
				"CHANNELS_LISTEN":         addr,
				"CHANNELS_BASE_URL":       "http://" + addr,
				"CHANNELS_METRICS_LISTEN": maddr,
			}
			before := appGoroutines()
			_, errOut, err := run(t, vars, "", "serve")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve = %v, want an error %q\n%s", err, tc.want, errOut)
			}
			var left []string
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				left = nil
				for id, stack := range appGoroutines() {
					if _, ok := before[id]; !ok {
						left = append(left, stack)
					}
				}
				if len(left) == 0 || time.Now().After(deadline) {
					break
				}
			}
			if len(left) > 0 {
				slices.Sort(left)
				t.Errorf("serve left %d goroutines of the app running:\n%s", len(left), strings.Join(left, "\n\n"))
			}
			if tc.busy != "listen" {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Errorf("the public address is still held: %v", err)
				} else {
					ln.Close()
				}
			}
		})
	}
}

var goroutineID = regexp.MustCompile(`^goroutine (\d+) `)

// appGoroutines returns the stacks, by goroutine id, of the goroutines
// running this module's code that no test started (none of the testing
// package's own).
func appGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		m := goroutineID.FindStringSubmatch(g)
		if m != nil && strings.Contains(g, "channels/internal/") && !strings.Contains(g, "testing.tRunner") {
			out[m[1]] = g
		}
	}
	return out
}

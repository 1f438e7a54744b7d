package cluster

import (
	"testing"
	"time"

	"channels/internal/hub"
)

// TestRemoteAddr: the address another process gave for a member's latest
// login there, for the reports this process makes of it; none for a
// member no other process holds.
func TestRemoteAddr(t *testing.T) {
	n, err := New(Options{URL: "nats://127.0.0.1:1", Prefix: "addr", Heartbeat: time.Second, clk: newFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.nc.Close)
	if got := n.RemoteAddr("u@d"); got != "" {
		t.Errorf("alone: RemoteAddr = %q, want none", got)
	}
	now := n.clk.now()
	n.tbl.heartbeat("peer", 0, wireMin, wireMax, now)
	n.tbl.snapshot("peer", 0, 0, true, []hub.Member{{UID: "u@d", Addr: "192.0.2.7:7", Conns: 1}}, now)
	for _, tt := range []struct{ uid, want string }{
		{"u@d", "192.0.2.7:7"},
		{"x@d", ""},
	} {
		if got := n.RemoteAddr(tt.uid); got != tt.want {
			t.Errorf("RemoteAddr(%q) = %q, want %q", tt.uid, got, tt.want)
		}
	}
}

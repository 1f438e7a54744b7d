package hub

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestShutdownCutsStuckReader: a subscriber that stopped reading, its
// writer blocked on a full socket, does not hold Shutdown until
// WriteTimeout (default 10 s, a whole grace): it is cut after the close
// wait, Shutdown returns nil well within its context, and a reader that
// reads gets its 1001. Before, Shutdown failed when its context ended.
func TestShutdownCutsStuckReader(t *testing.T) {
	gw := newDirGateway()
	h := New(Options{Gateway: gw, Domain: "example.com",
		RequestRate: 1e6, RequestBurst: 1e6, MaxEventBytes: 1 << 20,
		AddressBytes: unlimited, BroadcastBudget: Budget{Rate: 1e6, Burst: 1e6},
	})
	th := serveHub(t, h, nil)
	gw.add("fast", "pw", "room")
	gw.add("slow", "pw", "room")
	fast := floodPastStuckReader(t, th)
	// The slow reader's writer is stuck.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		stuck := false
		h.reg.eachConn(func(c *conn) { stuck = stuck || c.writeSince.Load() != 0 })
		if stuck {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no writer is stuck")
		}
	}

	sctx, scancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer scancel()
	start := time.Now()
	err := h.Shutdown(sctx)
	took := time.Since(start)
	t.Logf("Shutdown took %v", took.Round(time.Millisecond))
	if err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if took > 3*time.Second {
		t.Errorf("Shutdown took %v; the stuck reader should be cut after %v", took, shutdownCloseWait)
	}
	for {
		f, ok := fast.next(time.Second)
		if !ok {
			t.Fatal("the reading client was not closed")
		}
		if f.closed {
			if f.status != websocket.StatusGoingAway {
				t.Errorf("the reading client closed with %d, want 1001", f.status)
			}
			break
		}
	}
}

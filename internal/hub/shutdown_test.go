package hub

import (
	"context"
	"fmt"
	"strings"
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
	fast := dial(t, th, "fast", nil)
	fast.login("fast", "pw", "sf")
	result(t, fast.call(2, "verto.subscribe", map[string]any{"eventChannel": "room"}))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slow, _, err := websocket.Dial(ctx, th.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	for _, m := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"slow","passwd":"pw","sessid":"ss"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"verto.subscribe","params":{"eventChannel":"room"}}`,
	} {
		if err := slow.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	waitSubscribers(t, th, "room", 2)
	data := strings.Repeat("x", 64<<10)
	for i := range 200 { // 12.5 MiB for the slow reader: far beyond socket buffers
		fast.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"verto.broadcast","params":{"eventChannel":"room","eventData":"%s","localBroadcast":true}}`, 100+i, data))
		for range 2 { // the reply and the event
			if f, ok := fast.next(5 * time.Second); !ok || f.closed {
				t.Fatalf("fast reader stalled at %d", i)
			}
		}
	}
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
	err = h.Shutdown(sctx)
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

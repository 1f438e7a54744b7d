package hub

import (
	"context"
	"testing"
	"time"
)

// stuckFabric is a fabric whose Ready never confirms (NATS stopped
// reading): it returns only when its context ends.
type stuckFabric struct {
	*fakeFabric
	deadlines chan time.Duration // how far off each Ready's deadline was
}

func (f stuckFabric) Ready(ctx context.Context) error {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(time.Hour)
	}
	f.deadlines <- time.Until(d)
	<-ctx.Done()
	return ctx.Err()
}

// TestFabricReadyBounded: a fabric that does not confirm holds a login's
// reply up fabricWait at most, and a subscription's too.
func TestFabricReadyBounded(t *testing.T) {
	gw := newDirGateway()
	gw.add("a", "pw", "room")
	fab := stuckFabric{newFakeFabric(), make(chan time.Duration, 4)}
	th := startHub(t, gw, func(o *Options) { o.Fabric = fab })
	a := dial(t, th, "a", nil)
	start := time.Now()
	a.login("a", "pw", "sa")
	result(t, a.call(2, "verto.subscribe", map[string]any{"eventChannel": "room"}))
	took := time.Since(start)
	for range 2 {
		if d := <-fab.deadlines; d > fabricWait {
			t.Errorf("Ready's deadline %v away, want %v at most", d, fabricWait)
		}
	}
	if took < 2*fabricWait-100*time.Millisecond || took > 2*fabricWait+2*time.Second {
		t.Errorf("a login and a subscription took %v, want about %v each", took, fabricWait)
	}
}

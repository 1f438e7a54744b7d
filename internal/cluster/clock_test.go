package cluster

import (
	"testing"
	"time"
)

// offline is a node that never reaches NATS (nothing listens on port 1).
func offline(t *testing.T) *Node {
	t.Helper()
	n, err := New(Options{URL: "nats://127.0.0.1:1", Prefix: "clock", Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.nc.Close)
	return n
}

// TestClock: a value heard implausibly far ahead (a heartbeat carrying
// 2^64-1) is ignored rather than taken, the clock never wraps (it
// saturates at the largest int64), and a node that has heard nobody yet
// stamps a login above one stamped earlier elsewhere (the wall clock is
// the floor).
func TestClock(t *testing.T) {
	a := offline(t)
	s1 := a.Stamp()
	for _, garbage := range []func() uint64{
		func() uint64 { return 1<<64 - 1 },
		func() uint64 { return 1 << 63 },
		func() uint64 { return a.clock.Load() + maxClockJump + 1 },
	} {
		garbage := garbage()
		a.observe(garbage)
		s := a.Stamp()
		if s <= s1 || uint64(s) > wallClock()+1000 {
			t.Fatalf("after hearing %d: stamp %d (before %d, wall clock %d)", garbage, s, s1, wallClock())
		}
		s1 = s
	}
	if a.clockJumps.Load() != 3 {
		t.Errorf("%d implausible values counted, want 3", a.clockJumps.Load())
	}
	ahead := a.clock.Load() + 1e9 // a host whose clock is a quarter of an hour ahead
	a.observe(ahead)
	if s := a.Stamp(); uint64(s) != ahead+1 {
		t.Errorf("after hearing %d: stamp %d, want the next", ahead, s)
	}

	// Saturation, not a wrap to 0 (or a negative int64).
	a.clock.Store(maxClock - 1)
	for range 3 {
		if s := a.Stamp(); s != maxClock {
			t.Fatalf("stamp at the top: %d, want %d", s, int64(maxClock))
		}
	}

	// A node just started, that has heard nobody, stamps above a login
	// stamped before on a busy node.
	busy := offline(t)
	var last int64
	for range 1000 {
		last = busy.Stamp()
	}
	for wallClock() <= uint64(last) { // no sleep: the wall clock passes the last stamp
	}
	fresh := offline(t)
	if s := fresh.Stamp(); s <= last {
		t.Errorf("a fresh node stamps %d, below the %d of an older login elsewhere", s, last)
	}
}

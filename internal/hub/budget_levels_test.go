package hub

import (
	"testing"
	"time"

	"channels/internal/fixtures"
)

// TestBudgetLevels: what a hub tells of a member's budgets (nothing when
// it has none or they are full), and what it adopts from another hub:
// a lower level, never a higher one, down to one burst of debt, exactly
// (fractions of a token too), refilled from then on.
func TestBudgetLevels(t *testing.T) {
	b := newBudgets(Budget{Rate: 10, Burst: 20}, Budget{Rate: 25, Burst: 100}, 100)
	now := time.Unix(1000, 0)
	if _, ok := b.level("m", now); ok {
		t.Error("a level for a member never seen")
	}
	b.mu.Lock()
	b.memberLocked("m", now) // new: full
	b.mu.Unlock()
	if _, ok := b.level("m", now); ok {
		t.Error("a level for full budgets")
	}
	for range 5 {
		b.allowBroadcast("m", 10, now)
	}
	level := func(want Level) {
		t.Helper()
		if got, ok := b.level("m", now); !ok || got != want {
			t.Errorf("level %+v (%v), want %+v", got, ok, want)
		}
	}
	level(Level{Broadcast: 15, Message: 100})
	b.adopt("m", Level{Broadcast: 18, Message: 100}, now)
	level(Level{Broadcast: 15, Message: 100}) // never raised
	b.adopt("m", Level{Broadcast: 2.5, Message: 90}, now)
	level(Level{Broadcast: 2.5, Message: 90})
	now = now.Add(100 * time.Millisecond)
	level(Level{Broadcast: 3.5, Message: 92.5})
	b.adopt("m", Level{Broadcast: -1000, Message: 100}, now)
	level(Level{Broadcast: -20, Message: 92.5}) // one burst of debt at most
	if b.allowBroadcast("m", 10, now.Add(2*time.Second)) {
		t.Error("a broadcast accepted in debt")
	}
	if !b.allowBroadcast("m", 10, now.Add(2100*time.Millisecond)) {
		t.Error("a broadcast refused once the debt was paid back")
	}

	// A full level of a member unknown here is not remembered; a lower
	// one is.
	b.adopt("full", Level{Broadcast: 20, Message: 100}, now)
	b.adopt("low", Level{Broadcast: 1, Message: 100}, now)
	if b.members["full"] != nil || b.members["low"] == nil {
		t.Errorf("remembered a full level (%v) or forgot a low one (%v)", b.members["full"] != nil, b.members["low"] == nil)
	}
}

// TestBudgetHold: a held member's spending waits for the other hubs'
// levels (Settle), and then spends what is left of them; a hold that is
// never settled ends at its deadline.
func TestBudgetHold(t *testing.T) {
	b := newBudgets(Budget{Rate: 0.001, Burst: 20}, Budget{Rate: 0.001, Burst: 100}, 100)
	b.hold("m", time.Minute, time.Now())
	spent := make(chan bool)
	go func() { spent <- b.allowBroadcast("m", 10, time.Now()) }()
	waitFor(t, "the broadcast held", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.holds["m"].waiting == 1
	})
	// Another hub had spent it all: had the broadcast not waited, it
	// would have been taken from a full bucket.
	b.adopt("m", Level{Broadcast: 0, Message: 100}, time.Now())
	b.settle("m")
	if <-spent {
		t.Error("a held member spent before the other hubs' levels were in")
	}

	b.hold("n", 50*time.Millisecond, time.Now())
	start := time.Now()
	if !b.allowMessage("n", 10, time.Now()) {
		t.Error("a message refused after a hold that ended at its deadline")
	}
	if waited := time.Since(start); waited < 50*time.Millisecond || waited > 5*time.Second {
		t.Errorf("the hold lasted %v, want its 50 ms", waited)
	}
	if len(b.holds) != 0 {
		t.Errorf("%d holds left", len(b.holds))
	}
}

// TestChargedBeforeArrival: a member's broadcasts through another hub
// spend its budget here even while it has no connection here, so a
// member that comes here has no more left than it had there.
func TestChargedBeforeArrival(t *testing.T) {
	gw := newDirGateway()
	gw.add("a", "pw", "room")
	fab := newFakeFabric()
	th := startHub(t, gw, func(o *Options) {
		o.Fabric = fab
		o.BroadcastBudget = Budget{Rate: 0.001, Burst: 2}
	})
	uid := "a@" + fixtures.Domain
	for range 2 {
		fab.local.Event(uid, "room", []byte(`{"eventData":"elsewhere"}`))
	}
	a := dial(t, th, "a", nil)
	a.login("a", "pw", "sa")
	r := a.call(2, "verto.broadcast", map[string]any{"eventChannel": "room", "eventData": "x", "localBroadcast": true})
	if e := errorOf(t, r); e["code"] != float64(-32010) {
		t.Errorf("a member that spent its budget through another hub before coming here: %v", r)
	}
}

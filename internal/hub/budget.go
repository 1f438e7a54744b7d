package hub

import (
	"slices"
	"sync"
	"time"
)

// Budgets of what one member (a login, over all its connections) may make
// the hub deliver to others. They are kept per member rather than per
// connection, so opening more sockets buys nothing, and they outlive the
// member's connections for a while, so reconnecting does not refill them.
// In a cluster they follow the member from hub to hub (fabric.go: every
// hub charges what it hears the member spend elsewhere, and adopts the
// level another hub had when the member left it or arrived here).
//
// A broadcast or a direct message costs one token per started costUnit
// bytes of what it carries, so a few large ones cost as much as many
// small ones.
const costUnit = 4 << 10

// budgets holds the members' token buckets. Memory is bounded: when it
// holds maxEntries members it forgets those whose buckets are full, which
// behave exactly like new ones, then the oldest half.
type budgets struct {
	broadcast, message Budget
	maxEntries         int

	mu      sync.Mutex
	members map[string]*memberBudget
	holds   map[string]*hold // members whose spending waits for other hubs' levels
}

// hold makes a member's spending wait until the levels its other hubs
// had are in (settled), or until.
type hold struct {
	settled chan struct{}
	until   time.Time
	waiting int // spenders that came while it held (tests wait for them)
}

// maxHolds bounds the holds kept before expired ones are swept.
const maxHolds = 1024

// Budget is a token bucket's shape: Rate tokens a second, Burst at once.
type Budget struct {
	Rate  float64
	Burst int
}

type memberBudget struct {
	broadcast, message bucket
	used               time.Time
}

// bucket is a token bucket of a Budget: its tokens at last, below zero
// when it is in debt (charged for what a member spent through another
// hub, or lowered to what another hub had).
type bucket struct {
	tokens float64
	last   time.Time
}

// at is the bucket's tokens at now: refilled at the budget's rate since
// last, up to its burst.
func (k *bucket) at(s Budget, now time.Time) float64 {
	t := k.tokens
	if d := now.Sub(k.last); d > 0 && t < float64(s.Burst) {
		t = min(t+d.Seconds()*s.Rate, float64(s.Burst))
	}
	return t
}

func (k *bucket) advance(s Budget, now time.Time) {
	k.tokens = k.at(s, now)
	if now.After(k.last) {
		k.last = now
	}
}

// allow takes n tokens if the bucket holds them.
func (k *bucket) allow(s Budget, n int, now time.Time) bool {
	k.advance(s, now)
	if float64(n) > k.tokens {
		return false
	}
	k.tokens -= float64(n)
	return true
}

// charge takes n tokens, into debt if need be.
func (k *bucket) charge(s Budget, n int, now time.Time) {
	k.advance(s, now)
	k.tokens -= float64(n)
}

// lower brings the bucket down to level, never up, and never below one
// burst of debt.
func (k *bucket) lower(s Budget, level float64, now time.Time) {
	k.advance(s, now)
	if l := max(level, -float64(s.Burst)); l < k.tokens {
		k.tokens = l
	}
}

func newBudgets(broadcast, message Budget, maxEntries int) *budgets {
	return &budgets{broadcast: broadcast, message: message, maxEntries: maxEntries, members: make(map[string]*memberBudget)}
}

// cost is the number of tokens a payload of n bytes takes: one per
// started costUnit, at least one.
func cost(n int) int { return max(1, (n+costUnit-1)/costUnit) }

// allowBroadcast takes the tokens for a broadcast of n bytes by uid.
func (b *budgets) allowBroadcast(uid string, n int, now time.Time) bool {
	return b.take(uid, now, true, cost(n))
}

// allowMessage takes the tokens for a direct message of n bytes by uid.
func (b *budgets) allowMessage(uid string, n int, now time.Time) bool {
	return b.take(uid, now, false, cost(n))
}

// which returns a member's broadcast or direct-message bucket, and its
// budget.
func (b *budgets) which(m *memberBudget, broadcast bool) (*bucket, Budget) {
	if broadcast {
		return &m.broadcast, b.broadcast
	}
	return &m.message, b.message
}

// allowBytes takes the tokens for a frame of n bytes from key's first
// bucket, in a budgets kept per address (Hub.traffic).
func (b *budgets) allowBytes(key string, n int, now time.Time) bool {
	return b.allowBroadcast(key, n, now)
}

// take takes n tokens from uid's broadcast or direct-message bucket, if
// it holds them, once uid's budgets are not held (hold).
func (b *budgets) take(uid string, now time.Time, broadcast bool, n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.holds[uid]; h != nil {
		h.waiting++
		b.mu.Unlock()
		b.await(uid, h)
		b.mu.Lock()
		now = time.Now()
	}
	k, s := b.which(b.memberLocked(uid, now), broadcast)
	return k.allow(s, n, now)
}

// memberLocked returns uid's budgets, made full when new, and marks them
// used at now.
func (b *budgets) memberLocked(uid string, now time.Time) *memberBudget {
	m := b.members[uid]
	if m == nil {
		if len(b.members) >= b.maxEntries {
			b.pruneLocked(now)
		}
		m = &memberBudget{
			broadcast: bucket{tokens: float64(b.broadcast.Burst), last: now},
			message:   bucket{tokens: float64(b.message.Burst), last: now},
		}
		b.members[uid] = m
	}
	m.used = now
	return m
}

func (b *budgets) pruneLocked(now time.Time) {
	for uid, m := range b.members {
		if b.fullLocked(m, now) {
			delete(b.members, uid)
		}
	}
	if len(b.members) < b.maxEntries*3/4 {
		return
	}
	// Every bucket is in use: forget the members idle longest.
	times := make([]time.Time, 0, len(b.members))
	for _, m := range b.members {
		times = append(times, m.used)
	}
	cutoff := median(times)
	for uid, m := range b.members {
		if !m.used.After(cutoff) {
			delete(b.members, uid)
		}
	}
}

// fullLocked reports whether both of m's buckets are full at now: m
// behaves as a new member's.
func (b *budgets) fullLocked(m *memberBudget, now time.Time) bool {
	return m.broadcast.at(b.broadcast, now) >= float64(b.broadcast.Burst) && m.message.at(b.message, now) >= float64(b.message.Burst)
}

// median returns the middle time of ts (reorders ts).
func median(ts []time.Time) time.Time {
	slices.SortFunc(ts, time.Time.Compare)
	return ts[len(ts)/2]
}

// level reports uid's budgets at now; false when there are none, or they
// are full (they say nothing another hub does not know).
func (b *budgets) level(uid string, now time.Time) (Level, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.members[uid]
	if m == nil || b.fullLocked(m, now) {
		return Level{}, false
	}
	return Level{Broadcast: m.broadcast.at(b.broadcast, now), Message: m.message.at(b.message, now)}, true
}

// adopt lowers uid's budgets to l (what another hub had), never raising
// them: the member spent at least that much over there. A level below
// one burst of debt counts as that much.
func (b *budgets) adopt(uid string, l Level, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.members[uid] == nil && l.Broadcast >= float64(b.broadcast.Burst) && l.Message >= float64(b.message.Burst) {
		return // a full level: nothing to remember
	}
	m := b.memberLocked(uid, now)
	m.broadcast.lower(b.broadcast, l.Broadcast, now)
	m.message.lower(b.message, l.Message, now)
}

// hold makes uid's spending (allowBroadcast, allowMessage) wait, for d at
// most, until settle: the fabric is asking the hubs where the member is
// for their levels.
func (b *budgets) hold(uid string, d time.Duration, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holds == nil {
		b.holds = make(map[string]*hold)
	}
	if h := b.holds[uid]; h != nil {
		if until := now.Add(d); until.After(h.until) {
			h.until = until
		}
		return
	}
	if len(b.holds) >= maxHolds {
		for id, h := range b.holds {
			if !now.Before(h.until) {
				close(h.settled)
				delete(b.holds, id)
			}
		}
	}
	b.holds[uid] = &hold{settled: make(chan struct{}), until: now.Add(d)}
}

// settle ends uid's hold.
func (b *budgets) settle(uid string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.holds[uid]; h != nil {
		close(h.settled)
		delete(b.holds, uid)
	}
}

// await waits until h is settled or expired (the latter ends it).
func (b *budgets) await(uid string, h *hold) {
	for {
		b.mu.Lock()
		if b.holds[uid] != h {
			b.mu.Unlock()
			return // settled
		}
		d := time.Until(h.until)
		if d <= 0 {
			close(h.settled)
			delete(b.holds, uid)
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-h.settled:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

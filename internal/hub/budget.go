package hub

import (
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Budgets of what one member (a login, over all its connections) may make
// the hub deliver to others. They are kept per member rather than per
// connection, so opening more sockets buys nothing, and they outlive the
// member's connections for a while, so reconnecting does not refill them.
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
}

// Budget is a token bucket's shape: Rate tokens a second, Burst at once.
type Budget struct {
	Rate  float64
	Burst int
}

type memberBudget struct {
	broadcast, message *rate.Limiter
	used               time.Time
}

func newBudgets(broadcast, message Budget, maxEntries int) *budgets {
	return &budgets{broadcast: broadcast, message: message, maxEntries: maxEntries, members: make(map[string]*memberBudget)}
}

// cost is the number of tokens a payload of n bytes takes: one per
// started costUnit, at least one.
func cost(n int) int { return max(1, (n+costUnit-1)/costUnit) }

// allowBroadcast takes the tokens for a broadcast of n bytes by uid.
func (b *budgets) allowBroadcast(uid string, n int, now time.Time) bool {
	return b.take(uid, now, func(m *memberBudget) *rate.Limiter { return m.broadcast }, cost(n))
}

// allowMessage takes the tokens for a direct message of n bytes by uid.
func (b *budgets) allowMessage(uid string, n int, now time.Time) bool {
	return b.take(uid, now, func(m *memberBudget) *rate.Limiter { return m.message }, cost(n))
}

// allowBytes takes the tokens for a frame of n bytes from key's first
// bucket, in a budgets kept per address (Hub.traffic).
func (b *budgets) allowBytes(key string, n int, now time.Time) bool {
	return b.allowBroadcast(key, n, now)
}

func (b *budgets) take(uid string, now time.Time, which func(*memberBudget) *rate.Limiter, n int) bool {
	return which(b.member(uid, now)).AllowN(now, n)
}

// member returns uid's budgets, made full when new, and marks them used
// at now.
func (b *budgets) member(uid string, now time.Time) *memberBudget {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.members[uid]
	if m == nil {
		if len(b.members) >= b.maxEntries {
			b.pruneLocked(now)
		}
		m = &memberBudget{
			broadcast: rate.NewLimiter(rate.Limit(b.broadcast.Rate), b.broadcast.Burst),
			message:   rate.NewLimiter(rate.Limit(b.message.Rate), b.message.Burst),
		}
		b.members[uid] = m
	}
	m.used = now
	return m
}

func (b *budgets) pruneLocked(now time.Time) {
	for uid, m := range b.members {
		if m.broadcast.TokensAt(now) >= float64(b.broadcast.Burst) && m.message.TokensAt(now) >= float64(b.message.Burst) {
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

// median returns the middle time of ts (reorders ts).
func median(ts []time.Time) time.Time {
	slices.SortFunc(ts, time.Time.Compare)
	return ts[len(ts)/2]
}

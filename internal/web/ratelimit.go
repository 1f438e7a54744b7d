package web

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a set of token buckets, one per key (a client address, a user
// name, or both). Each bucket holds up to burst tokens and gains one every
// interval. It tracks at most max keys.
type limiter struct {
	burst int
	every time.Duration
	max   int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLimiter(burst int, every time.Duration, max int) *limiter {
	return &limiter{burst: burst, every: every, max: max, buckets: make(map[string]*rate.Limiter)}
}

// bucket returns key's bucket, made full when new. l.mu is held.
func (l *limiter) bucket(key string, now time.Time) *rate.Limiter {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max {
			l.prune(now)
		}
		b = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.buckets[key] = b
	}
	return b
}

// take takes a token from key's bucket. When the bucket is empty it takes
// nothing and returns false and how long until the next token, as the
// limiter's reservation says: what a 429's Retry-After tells the browser.
func (l *limiter) take(key string, now time.Time) (bool, time.Duration) {
	_, ok, wait := l.reserve(key, now)
	return ok, wait
}

// reserve takes a token from key's bucket at once, before the attempt it
// pays for, so that attempts running together cannot all pass on the same
// token (checking first and charging after the slow password check let
// 100 of 100 simultaneous guesses through a burst of 20). When the bucket
// is empty it takes nothing and returns false and how long until the next
// token. The caller gives the token back with refund when the attempt
// should not cost (a success).
func (l *limiter) reserve(key string, now time.Time) (*rate.Reservation, bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now)
		return nil, false, d
	}
	return r, true, 0
}

// refund gives back the token of a reservation made at now. It must be
// given the reservation's own time: rate.Reservation restores nothing when
// cancelled after it.
func (l *limiter) refund(r *rate.Reservation, now time.Time) {
	if r != nil {
		r.CancelAt(now)
	}
}

// prune forgets full buckets, which behave exactly like new ones. If that
// is not enough it forgets the fullest until half remain, trading
// precision for bounded memory under a flood of distinct keys: the buckets
// in use the most (an account under attack) are kept the longest.
func (l *limiter) prune(now time.Time) {
	type kt struct {
		key    string
		tokens float64
	}
	var rest []kt
	for k, b := range l.buckets {
		if t := b.TokensAt(now); t >= float64(l.burst) {
			delete(l.buckets, k)
		} else {
			rest = append(rest, kt{k, t})
		}
	}
	if len(l.buckets) < l.max {
		return
	}
	slices.SortFunc(rest, func(a, b kt) int { return cmp.Compare(b.tokens, a.tokens) })
	for _, e := range rest[:len(rest)-l.max/2] {
		delete(l.buckets, e.key)
	}
}

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

// take takes a token from key's bucket. When the bucket is empty it returns
// false and how long until the next token.
func (l *limiter) take(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	if b.AllowN(now, 1) {
		return true, 0
	}
	return false, l.wait(b, now)
}

// check reports whether key's bucket holds a token, without taking it, and
// if not how long until it does.
func (l *limiter) check(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok || b.TokensAt(now) >= 1 {
		return true, 0
	}
	return false, l.wait(b, now)
}

// charge takes a token from key's bucket even when it is empty: the bucket
// goes into debt (down to -burst), so attempts that passed check together
// are all paid for.
func (l *limiter) charge(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	if b.TokensAt(now) > float64(-l.burst) {
		// A reservation of one token always succeeds; it is never cancelled.
		b.ReserveN(now, 1)
	}
}

func (l *limiter) wait(b *rate.Limiter, now time.Time) time.Duration {
	return time.Duration((1 - b.TokensAt(now)) * float64(l.every))
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

// knownSet remembers (user name, address) pairs that signed in
// successfully, for a while: the per-name sign-in budget does not apply to
// them, so failures from elsewhere cannot lock the owner out of the places
// they sign in from. It tracks at most max pairs.
type knownSet struct {
	ttl time.Duration
	max int

	mu   sync.Mutex
	seen map[string]time.Time
}

func newKnownSet(ttl time.Duration, max int) *knownSet {
	return &knownSet{ttl: ttl, max: max, seen: make(map[string]time.Time)}
}

func (k *knownSet) add(key string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.seen[key]; !ok && len(k.seen) >= k.max {
		k.prune(now)
	}
	k.seen[key] = now
}

func (k *knownSet) has(key string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.seen[key]
	return ok && now.Sub(t) < k.ttl
}

// prune forgets expired pairs, then the oldest until half remain. Only
// successful sign-ins add pairs, so filling the set takes valid
// credentials and as many addresses.
func (k *knownSet) prune(now time.Time) {
	type kt struct {
		key string
		at  time.Time
	}
	var rest []kt
	for key, t := range k.seen {
		if now.Sub(t) >= k.ttl {
			delete(k.seen, key)
		} else {
			rest = append(rest, kt{key, t})
		}
	}
	if len(k.seen) < k.max {
		return
	}
	slices.SortFunc(rest, func(a, b kt) int { return a.at.Compare(b.at) })
	for _, e := range rest[:len(rest)-k.max/2] {
		delete(k.seen, e.key)
	}
}

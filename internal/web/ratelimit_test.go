package web

import (
	"fmt"
	"testing"
	"time"
)

// TestLimiterWait: a bucket of 2 that gains a token every 10 s lets two
// attempts through, then refuses with the wait its reservation gives (what
// Retry-After says), shorter as time passes, and lets one through once it
// is over. Keys do not share buckets.
func TestLimiterWait(t *testing.T) {
	l := newLimiter(2, 10*time.Second, 100)
	t0 := time.Unix(1_800_000_000, 0)
	steps := []struct {
		key  string
		at   time.Duration
		ok   bool
		wait time.Duration
	}{
		{"a", 0, true, 0},
		{"a", 0, true, 0},
		{"a", 0, false, 10 * time.Second},
		{"b", 0, true, 0},
		{"a", 4 * time.Second, false, 6 * time.Second},
		{"a", 4 * time.Second, false, 6 * time.Second}, // a refusal costs nothing
		{"a", 10 * time.Second, true, 0},
		{"a", 10 * time.Second, false, 10 * time.Second},
	}
	for i, s := range steps {
		ok, wait := l.take(s.key, t0.Add(s.at))
		// The limiter counts in floating point: a nanosecond either way.
		if ok != s.ok || (wait-s.wait).Abs() > time.Microsecond {
			t.Errorf("step %d (%s at %v): %v, %v; want %v, %v", i, s.key, s.at, ok, wait, s.ok, s.wait)
		}
	}
}

// TestLimiterRefund: a refunded reservation gives its token back; one
// refunded at another time than it was made does not (rate.Reservation
// restores nothing then), which is why refund takes the reservation's time.
func TestLimiterRefund(t *testing.T) {
	l := newLimiter(1, time.Minute, 100)
	now := time.Unix(1_800_000_000, 0)
	r, ok, _ := l.reserve("k", now)
	if !ok {
		t.Fatal("first reservation refused")
	}
	if ok, wait := l.take("k", now); ok || (wait-time.Minute).Abs() > time.Microsecond {
		t.Fatalf("second: %v, %v", ok, wait)
	}
	l.refund(r, now)
	if ok, _ := l.take("k", now); !ok {
		t.Error("refunded token not given back")
	}
}

// TestLimiterBounded: a flood of distinct keys keeps at most max buckets,
// and the bucket in use (an account under attack) survives it.
func TestLimiterBounded(t *testing.T) {
	l := newLimiter(3, time.Minute, 50)
	now := time.Unix(1_800_000_000, 0)
	for range 3 {
		l.take("victim", now)
	}
	for i := range 1000 {
		l.take(fmt.Sprint("stranger", i), now)
	}
	if n := len(l.buckets); n > 50 {
		t.Errorf("%d buckets, want at most 50", n)
	}
	if ok, _ := l.take("victim", now); ok {
		t.Error("the emptied bucket was forgotten under the flood")
	}
}

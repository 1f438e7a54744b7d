package web

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"channels/internal/store/storetest"
)

// browserFrom is a browser whose connections come from the loopback
// address ip, so the server sees it as another client address.
func (s *site) browserFrom(ip string) *browser {
	b := s.browser()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	b.c.Transport = &http.Transport{DialContext: d.DialContext}
	return b
}

// signInStep is one sign-in attempt as alice (password "right password")
// from an address, after the clock has moved by advance. want 0 accepts
// 401 or 429.
type signInStep struct {
	from    string
	pw      string
	advance time.Duration
	want    int
}

// fail is n wrong attempts from one address, each wanting want.
func fail(from string, n, want int) []signInStep {
	steps := make([]signInStep, n)
	for i := range steps {
		steps[i] = signInStep{from: from, pw: "wrong", want: want}
	}
	return steps
}

func join(parts ...[]signInStep) []signInStep {
	var all []signInStep
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// TestSignInLockout: someone else's failures do not keep the owner, with
// the right password from their own address, out (on the old limiter,
// which counted every attempt per name before the password, the owner got
// 429); and guessing stays slow: an address gets pairBurst failures, then
// one more per pairEvery, and many addresses together nameBurst, then one
// per nameEvery.
func TestSignInLockout(t *testing.T) {
	const (
		attacker = "127.0.0.2"
		owner    = "127.0.0.3"
		traveler = "127.0.0.4" // the owner, from an address never used before
	)
	// Attackers with many addresses: 127.0.1.1, 127.0.1.2, ...
	many := func(from, to int) []signInStep {
		var steps []signInStep
		for i := from; i <= to; i++ {
			steps = append(steps, fail("127.0.1."+strconv.Itoa(i), pairBurst, http.StatusUnauthorized)...)
		}
		return steps
	}
	// One wrong try every 11 s for ten minutes, as in the issue.
	var steady []signInStep
	for range 10 * time.Minute / (11 * time.Second) {
		steady = append(steady, signInStep{from: attacker, pw: "wrong", advance: 11 * time.Second})
	}
	tests := []struct {
		name  string
		steps []signInStep
		// maxVerified bounds the attacker's attempts that reached the
		// password check (got 401), when positive.
		maxVerified int
	}{
		{
			name: "a burst of failures from one address",
			steps: join(
				fail(attacker, pairBurst, http.StatusUnauthorized),
				fail(attacker, 3, http.StatusTooManyRequests),
				// The right password does not get through either: guessing
				// stays slow.
				[]signInStep{{from: attacker, pw: "right password", want: http.StatusTooManyRequests}},
				[]signInStep{{from: owner, pw: "right password", want: http.StatusSeeOther}},
				// One more try per pairEvery.
				[]signInStep{{from: attacker, pw: "wrong", advance: pairEvery, want: http.StatusUnauthorized}},
				fail(attacker, 1, http.StatusTooManyRequests),
			),
			maxVerified: pairBurst + 1,
		},
		{
			name: "one failure every 11 s for ten minutes",
			steps: join(
				fail(attacker, pairBurst, http.StatusUnauthorized),
				steady,
				[]signInStep{{from: owner, pw: "right password", want: http.StatusSeeOther}},
			),
			maxVerified: pairBurst + int(10*time.Minute/pairEvery) + 1,
		},
		{
			name: "many addresses spend the name's budget",
			steps: join(
				[]signInStep{{from: owner, pw: "right password", want: http.StatusSeeOther}},
				many(1, nameBurst/pairBurst),
				// A fresh address is refused at once.
				fail("127.0.2.1", 1, http.StatusTooManyRequests),
				// The owner, where they signed in before, is not.
				[]signInStep{{from: owner, pw: "wrong", want: http.StatusUnauthorized}},
				[]signInStep{{from: owner, pw: "right password", want: http.StatusSeeOther}},
				// What such an attacker can still do: keep the owner out
				// of addresses they never signed in from.
				[]signInStep{{from: traveler, pw: "right password", want: http.StatusTooManyRequests}},
				[]signInStep{{from: traveler, pw: "right password", advance: nameEvery, want: http.StatusSeeOther}},
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t, storetest.SQLite(t).Store, nil)
			s.srv.byAddr = newLimiter(addrBurst, addrEvery, maxTracked)
			s.srv.byName = newLimiter(nameBurst, nameEvery, maxTracked)
			s.srv.byPair = newLimiter(pairBurst, pairEvery, maxTracked)
			s.freezeClock()
			s.user("alice", "right password", false)
			browsers := map[string]*browser{}
			verified := 0
			for i, st := range tt.steps {
				s.advance(st.advance)
				b, ok := browsers[st.from]
				if !ok {
					b = s.browserFrom(st.from)
					browsers[st.from] = b
				}
				r := b.post("/signin", url.Values{"name": {"alice"}, "password": {st.pw}})
				switch {
				case st.want != 0 && r.status != st.want:
					t.Fatalf("step %d (%s, %q): %d, want %d", i, st.from, st.pw, r.status, st.want)
				case st.want == 0 && r.status != http.StatusUnauthorized && r.status != http.StatusTooManyRequests:
					t.Fatalf("step %d (%s, %q): %d", i, st.from, st.pw, r.status)
				}
				if r.status == http.StatusUnauthorized && st.from == attacker {
					verified++
				}
				if r.status == http.StatusSeeOther {
					b.signOut()
				}
			}
			if tt.maxVerified > 0 && verified > tt.maxVerified {
				t.Errorf("the attacker's password was checked %d times, want at most %d", verified, tt.maxVerified)
			}
		})
	}
}

package web

import (
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"channels/internal/config"
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
				// The owner, in the browser they signed in with before
				// (its device cookie), is not.
				[]signInStep{{from: owner, pw: "wrong", want: http.StatusUnauthorized}},
				[]signInStep{{from: owner, pw: "right password", want: http.StatusSeeOther}},
				// What such an attacker can still do: keep the owner out
				// of browsers they never signed in with.
				[]signInStep{{from: traveler, pw: "right password", want: http.StatusTooManyRequests}},
				[]signInStep{{from: traveler, pw: "right password", advance: nameEvery, want: http.StatusSeeOther}},
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t, storetest.SQLite(t).Store, nil)
			s.realSignInLimits()
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

// realSignInLimits puts back the sign-in limits newSite lifts, and
// freezes the clock they run on.
func (s *site) realSignInLimits() {
	s.srv.byAddr = newLimiter(addrBurst, addrEvery, maxTracked)
	s.srv.byName = newLimiter(nameBurst, nameEvery, maxTracked)
	s.srv.byPair = newLimiter(pairBurst, pairEvery, maxTracked)
	s.srv.byDevice = newLimiter(deviceBurst, deviceEvery, maxTracked)
	s.freezeClock()
}

// attempt is one sign-in attempt, its status.
func (b *browser) attempt(name, pw string) int {
	b.t.Helper()
	return b.post("/signin", url.Values{"name": {name}, "password": {pw}}).status
}

// device is the value of the browser's device cookie ("" for none).
func (b *browser) device() string {
	u, _ := url.Parse(b.site.ts.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == deviceCookie {
			return c.Value
		}
	}
	return ""
}

// withDevice gives the browser a device cookie, as one copied from
// another browser.
func (b *browser) withDevice(value string) *browser {
	u, _ := url.Parse(b.site.ts.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: deviceCookie, Value: value, Path: "/"}})
	return b
}

// spendName spends what is left of alice's per-name budget with wrong
// passwords from fresh addresses 127.0.<net>.1, 127.0.<net>.2, …, and
// checks that a fresh address is then refused.
func (s *site) spendName(t *testing.T, net int) {
	t.Helper()
	from := func(i int) *browser { return s.browserFrom("127.0." + strconv.Itoa(net) + "." + strconv.Itoa(i)) }
spend:
	for i := 1; i <= nameBurst/pairBurst; i++ {
		b := from(i)
		for range pairBurst {
			switch st := b.attempt("alice", "wrong"); st {
			case http.StatusUnauthorized:
			case http.StatusTooManyRequests:
				break spend
			default:
				t.Fatalf("attacker %d: %d, want 401 or 429", i, st)
			}
		}
	}
	if st := from(99).attempt("alice", "right password"); st != http.StatusTooManyRequests {
		t.Fatalf("fresh address, no device, after the name's budget is spent: %d, want 429", st)
	}
}

// TestSignInConcurrentGuesses: guesses sent at once cannot share a token.
// The password check is made slow (it waits until every attempt has either
// reached it or been answered), as argon2 is under load: on the old
// check-then-charge limiter all 100 guesses from 20 addresses reached it,
// although the name's burst is 20.
func TestSignInConcurrentGuesses(t *testing.T) {
	const addrs, each = 20, pairBurst
	const total = addrs * each
	s := newSite(t, storetest.SQLite(t).Store, nil)
	s.realSignInLimits()
	s.user("alice", "right password", false)

	var entered, answered atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	settle := func() {
		if entered.Load()+answered.Load() == total {
			once.Do(func() { close(release) })
		}
	}
	s.srv.hashing = make(chan struct{}, total) // the budgets are under test here, not the hashing places
	verify := s.srv.verify
	s.srv.verify = func(pw, hash string) (bool, error) {
		entered.Add(1)
		settle()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
			t.Error("attempts never all arrived")
		}
		return verify(pw, hash)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range addrs {
		b := s.browserFrom("127.0.5." + strconv.Itoa(i+1))
		for range each {
			wg.Go(func() {
				form := url.Values{"name": {"alice"}, "password": {"wrong"}}.Encode()
				req, _ := http.NewRequest(http.MethodPost, s.ts.URL+"/signin", strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", "same-origin")
				resp, err := b.c.Do(req)
				if err != nil {
					t.Error(err)
					answered.Add(1)
					settle()
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					answered.Add(1)
					settle()
				}
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	t.Logf("statuses %v; password checks %d of %d attempts", statuses, entered.Load(), total)
	if n := entered.Load(); n > nameBurst {
		t.Errorf("%d of %d simultaneous guesses reached the password check, want at most %d (the name's burst)", n, total, nameBurst)
	}
	if statuses[http.StatusUnauthorized]+statuses[http.StatusTooManyRequests] != total {
		t.Errorf("statuses %v, want only 401 and 429", statuses)
	}
}

// TestTrustedDeviceSignIn: the browser an owner signed in with before
// signs in while strangers have spent the name's budget, from many
// addresses and from the owner's own (a shared NAT); no other cookie
// exempts; a stolen device cookie still guesses slowly.
func TestTrustedDeviceSignIn(t *testing.T) {
	const (
		home     = "127.0.0.3" // the owner's address, shared with an attacker
		traveler = "127.0.0.4" // the owner, elsewhere
	)
	backends := []struct {
		name string
		open func(testing.TB) storetest.Backend
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}}
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) {
			t.Run("owner during an attack", func(t *testing.T) {
				s := newSite(t, bk.open(t).Store, nil)
				s.realSignInLimits()
				s.user("alice", "right password", false)
				owner := s.browserFrom(home)
				owner.t = t
				owner.signIn("alice", "right password")
				owner.signOut() // keeps the device cookie
				if owner.device() == "" {
					t.Fatal("no device cookie after sign-in and sign-out")
				}
				// The attacker behind the same NAT spends the pair's budget
				// (old code: the known-pair exemption was for the address,
				// so it was theirs too), others the name's.
				neighbour := s.browserFrom(home)
				for range pairBurst {
					if st := neighbour.attempt("alice", "wrong"); st != http.StatusUnauthorized {
						t.Fatalf("neighbour: %d, want 401", st)
					}
				}
				if st := neighbour.attempt("alice", "right password"); st != http.StatusTooManyRequests {
					t.Fatalf("neighbour after its burst: %d, want 429", st)
				}
				s.spendName(t, 6)
				if st := owner.attempt("alice", "wrong"); st != http.StatusUnauthorized {
					t.Errorf("owner's browser, a typo: %d, want 401", st)
				}
				if st := owner.attempt("alice", "right password"); st != http.StatusSeeOther {
					t.Errorf("owner's browser at home: %d, want 303", st)
				}
				away := s.browserFrom(traveler).withDevice(owner.device())
				if st := away.attempt("alice", "right password"); st != http.StatusSeeOther {
					t.Errorf("owner's browser elsewhere: %d, want 303", st)
				}
			})

			t.Run("no other cookie exempts", func(t *testing.T) {
				s := newSite(t, bk.open(t).Store, nil)
				s.realSignInLimits()
				s.user("alice", "right password", false)
				s.user("bob", "bob password", false)
				bob := s.browserFrom("127.0.0.5")
				bob.t = t
				bob.signIn("bob", "bob password")
				alice := s.browserFrom("127.0.0.6")
				alice.t = t
				alice.signIn("alice", "right password")
				replaced := alice.device()
				alice.signIn("alice", "right password")
				if alice.device() == replaced {
					t.Fatal("the device cookie was not replaced on sign-in")
				}
				s.spendName(t, 7)
				tests := []struct {
					name, cookie string
					want         int
				}{
					{"forged", base64.RawURLEncoding.EncodeToString(make([]byte, deviceTokenLen)), http.StatusTooManyRequests},
					{"malformed", "not base64 !", http.StatusTooManyRequests},
					{"another user's", bob.device(), http.StatusTooManyRequests},
					{"replaced", replaced, http.StatusTooManyRequests},
					{"current", alice.device(), http.StatusSeeOther},
				}
				var current *browser
				for i, tt := range tests {
					b := s.browserFrom("127.0.8." + strconv.Itoa(i+1)).withDevice(tt.cookie)
					if st := b.attempt("alice", "right password"); st != tt.want {
						t.Errorf("%s cookie: %d, want %d", tt.name, st, tt.want)
					}
					current = b
				}
				// The last success replaced the cookie; let it expire.
				s.advance(deviceLifetime + time.Minute)
				s.spendName(t, 9)
				if st := current.attempt("alice", "right password"); st != http.StatusTooManyRequests {
					t.Errorf("expired cookie: %d, want 429", st)
				}
			})

			t.Run("a stolen cookie guesses slowly", func(t *testing.T) {
				s := newSite(t, bk.open(t).Store, nil)
				s.realSignInLimits()
				s.user("alice", "right password", false)
				owner := s.browserFrom(home)
				owner.t = t
				owner.signIn("alice", "right password")
				thief := s.browserFrom("127.0.0.9").withDevice(owner.device())
				for i := range deviceBurst {
					if st := thief.attempt("alice", "wrong"); st != http.StatusUnauthorized {
						t.Fatalf("thief try %d: %d, want 401", i, st)
					}
				}
				if st := thief.attempt("alice", "right password"); st != http.StatusTooManyRequests {
					t.Errorf("thief after the device's burst: %d, want 429", st)
				}
				s.advance(deviceEvery)
				if st := thief.attempt("alice", "wrong"); st != http.StatusUnauthorized {
					t.Errorf("thief a minute later: %d, want 401", st)
				}
				if st := thief.attempt("alice", "wrong"); st != http.StatusTooManyRequests {
					t.Errorf("thief again: %d, want 429", st)
				}
				// The device's failures spent neither the name's nor the
				// owner's pair's budget.
				if st := s.browserFrom(home).attempt("alice", "right password"); st != http.StatusSeeOther {
					t.Errorf("owner in another browser: %d, want 303", st)
				}
			})

			t.Run("devices per user are bounded", func(t *testing.T) {
				st := bk.open(t).Store
				s := newSite(t, st, nil)
				u := s.user("alice", "right password", false)
				var first string
				for i := range maxDevices + 5 {
					b := s.browser()
					b.t = t
					b.signIn("alice", "right password")
					if i == 0 {
						first = b.device()
					}
				}
				again := s.browser()
				again.t = t
				for range 5 {
					again.signIn("alice", "right password")
				}
				if n, err := st.CountTrustedDevices(t.Context(), u.ID); err != nil || n != maxDevices {
					t.Errorf("%d devices kept (%v), want %d", n, err, maxDevices)
				}
				s.realSignInLimits()
				s.spendName(t, 10)
				if st := s.browser().withDevice(first).attempt("alice", "right password"); st != http.StatusTooManyRequests {
					t.Errorf("the oldest device, forgotten: %d, want 429", st)
				}
				if st := again.attempt("alice", "right password"); st != http.StatusSeeOther {
					t.Errorf("a recent device: %d, want 303", st)
				}
			})
		})
	}
}

// TestDeviceCookieAttributes: the device cookie is HttpOnly, SameSite=Lax,
// for the whole site, lasts deviceLifetime, and under https is Secure with
// the __Host- prefix; signing out keeps it.
func TestDeviceCookieAttributes(t *testing.T) {
	tests := []struct {
		name   string
		https  bool
		cookie string
	}{
		{"http", false, deviceCookie},
		{"https", true, deviceCookieSecure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t, storetest.SQLite(t).Store, func(c *config.Config) {
				if tt.https {
					c.BaseURL = "https://channels.example"
				}
			})
			s.user("alice", "right password", false)
			b := s.browser()
			r := b.post("/signin", url.Values{"name": {"alice"}, "password": {"right password"}})
			if r.status != http.StatusSeeOther {
				t.Fatalf("sign in: %d", r.status)
			}
			var dev *http.Cookie
			for _, line := range r.header.Values("Set-Cookie") {
				if c, err := http.ParseSetCookie(line); err == nil && c.Name == tt.cookie {
					dev = c
				}
			}
			if dev == nil {
				t.Fatalf("no %s cookie in %q", tt.cookie, r.header.Values("Set-Cookie"))
			}
			if raw, err := base64.RawURLEncoding.DecodeString(dev.Value); err != nil || len(raw) != deviceTokenLen {
				t.Errorf("token %q: %d bytes, %v", dev.Value, len(raw), err)
			}
			if !dev.HttpOnly || dev.SameSite != http.SameSiteLaxMode || dev.Path != "/" || dev.Domain != "" ||
				dev.MaxAge != int(deviceLifetime/time.Second) || dev.Secure != tt.https {
				t.Errorf("cookie %+v", dev)
			}
			if tt.https {
				return // the jar keeps Secure cookies for https only
			}
			out := b.post("/signout", nil)
			for _, line := range out.header.Values("Set-Cookie") {
				if c, err := http.ParseSetCookie(line); err == nil && c.Name == tt.cookie {
					t.Errorf("sign-out set the device cookie: %q", line)
				}
			}
			if b.device() != dev.Value {
				t.Errorf("device cookie after sign-out %q, want %q", b.device(), dev.Value)
			}
		})
	}
}

// TestSignInHashingBounded: simultaneous sign-ins, each from its own
// address and within every budget, run at most the server's places of
// password checks at once (each argon2id check takes ~19 MiB); those that
// cannot get a place in time are answered 503, not queued without bound.
func TestSignInHashingBounded(t *testing.T) {
	const places, attempts = 2, 12
	s := newSite(t, storetest.SQLite(t).Store, nil)
	s.realSignInLimits()
	s.user("alice", "right password", false)
	s.srv.hashing = make(chan struct{}, places)
	s.srv.hashWait = 200 * time.Millisecond
	var inside, most atomic.Int32
	verify := s.srv.verify
	s.srv.verify = func(pw, hash string) (bool, error) {
		n := inside.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond) // a slow hash
		inside.Add(-1)
		return verify(pw, hash)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range attempts {
		b := s.browserFrom("127.0.6." + strconv.Itoa(i+1))
		wg.Go(func() {
			form := url.Values{"name": {"alice"}, "password": {"wrong"}}.Encode()
			req, _ := http.NewRequest(http.MethodPost, s.ts.URL+"/signin", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, err := b.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("statuses %v, at most %d checks at once", statuses, most.Load())
	if most.Load() > places {
		t.Fatalf("%d password checks ran at once, places %d", most.Load(), places)
	}
	if statuses[http.StatusServiceUnavailable] == 0 || statuses[http.StatusUnauthorized] == 0 {
		t.Fatalf("statuses %v: want some checked (401) and some turned away (503)", statuses)
	}
}

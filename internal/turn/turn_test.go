package turn

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Golden values computed outside Go, by OpenSSL:
//
//	printf '%s' "$username" | openssl dgst -sha1 -hmac "$secret" -binary | base64
//
// The first is RFC 2202's test case 2 for HMAC-SHA1 (effcdf6a…7c79), in
// base64.
func TestPasswordGolden(t *testing.T) {
	for _, tc := range []struct{ secret, username, want string }{
		{"Jefe", "what do ya want for nothing?", "7/zfauXrL6LSdBbV8YTfnCWafHk="},
		{"north-gov-shared-secret", "1700000000:0b5c9a1e-3f2d-4c8b-9e6a-7d1f2a3b4c5d", "MJFMobeDkhvzHGg1KumL5Sk4NYk="},
	} {
		if got := Password([]byte(tc.secret), tc.username); got != tc.want {
			t.Errorf("Password(%q, %q) = %q, want %q", tc.secret, tc.username, got, tc.want)
		}
	}
}

const (
	testSecret = "north-gov-shared-secret"
	testUser   = "0b5c9a1e-3f2d-4c8b-9e6a-7d1f2a3b4c5d"
)

var testURLs = []string{"turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"}

func TestMint(t *testing.T) {
	for _, tc := range []struct {
		name         string
		now          time.Time
		ttl          time.Duration
		wantUsername string
		wantPassword string // "": checked only against Password
	}{
		{
			// now + a day is 1700000000, rounded up to the next half day.
			name: "a day", now: time.Unix(1699913600, 0), ttl: 24 * time.Hour,
			wantUsername: "1700006400:" + testUser, wantPassword: "oCyZ71F/kCrd/XxIenr2poeOlhY=",
		},
		{
			// Never valid for less than the lifetime: a fraction of a
			// second rounds up.
			name: "rounded up", now: time.Unix(1699999989, 1), ttl: 10 * time.Second,
			wantUsername: "1700000000:" + testUser, wantPassword: "MJFMobeDkhvzHGg1KumL5Sk4NYk=",
		},
		{name: "whole second kept", now: time.Unix(1699999990, 0), ttl: 10 * time.Second, wantUsername: "1700000000:" + testUser},
		{name: "an hour, to the next half hour", now: time.Unix(1700000000, 0), ttl: time.Hour, wantUsername: "1700004600:" + testUser},
		{name: "on a half hour", now: time.Unix(1700001000, 0), ttl: time.Hour, wantUsername: "1700004600:" + testUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Options{Secret: testSecret, URLs: testURLs, TTL: tc.ttl, Now: func() time.Time { return tc.now }})
			if err != nil {
				t.Fatal(err)
			}
			c, err := m.Mint(testUser)
			if err != nil {
				t.Fatal(err)
			}
			if c.Username != tc.wantUsername {
				t.Errorf("username %q, want %q", c.Username, tc.wantUsername)
			}
			if tc.wantPassword != "" && c.Password != tc.wantPassword {
				t.Errorf("password %q, want %q", c.Password, tc.wantPassword)
			}
			if c.Password != Password([]byte(testSecret), c.Username) {
				t.Errorf("password %q is not the HMAC of its username", c.Password)
			}
			if exp, _, _ := strings.Cut(c.Username, ":"); exp != strconv.FormatInt(c.Expires.Unix(), 10) {
				t.Errorf("Expires %d does not match the username's %s", c.Expires.Unix(), exp)
			}
			if c.Expires.Before(tc.now.Add(tc.ttl)) {
				t.Errorf("expires %v, before now + ttl %v", c.Expires, tc.now.Add(tc.ttl))
			}
			if strings.Join(c.URLs, ",") != strings.Join(testURLs, ",") {
				t.Errorf("URLs %q, want %q", c.URLs, testURLs)
			}
		})
	}
}

// TestMintBoundsUsernames: a client reloading without end (a page view a
// second for two days) is given one username per half-TTL step, each
// valid between 1 and 1.5 TTL, so it never holds more than three valid
// usernames at once.
func TestMintBoundsUsernames(t *testing.T) {
	const ttl = 24 * time.Hour
	now := time.Unix(1700000123, 456)
	m, err := New(Options{Secret: testSecret, URLs: testURLs, TTL: ttl, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	expiries := map[int64]bool{}
	for range 2 * 24 * 3600 {
		c, err := m.Mint(testUser)
		if err != nil {
			t.Fatal(err)
		}
		if left := c.Expires.Sub(now); left < ttl || left > ttl*3/2 {
			t.Fatalf("at %v: valid for %v, want between %v and %v", now, left, ttl, ttl*3/2)
		}
		expiries[c.Expires.Unix()] = true
		valid := 0
		for e := range expiries {
			if e > now.Unix() {
				valid++
			}
		}
		if valid > 3 {
			t.Fatalf("at %v: %d valid usernames", now, valid)
		}
		now = now.Add(time.Second)
	}
	if len(expiries) > 5 {
		t.Errorf("%d usernames in two days, want one per half day", len(expiries))
	}
}

// The clock is read at each Mint, and a caller changing the URLs it got
// changes nothing for the next.
func TestMintFollowsClock(t *testing.T) {
	now := time.Unix(1700000000, 0)
	m, err := New(Options{Secret: testSecret, URLs: testURLs, TTL: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := m.Mint(testUser)
	a.URLs[0] = "turn:evil.example"
	now = now.Add(time.Hour)
	b, _ := m.Mint(testUser)
	if got, want := b.Expires.Sub(a.Expires), time.Hour; got != want {
		t.Errorf("second credential expires %v after the first, want %v", got, want)
	}
	if a.Password == b.Password {
		t.Errorf("two expiries gave the same password")
	}
	if b.URLs[0] != testURLs[0] {
		t.Errorf("URLs changed by a caller: %q", b.URLs)
	}
}

func TestMintRefusesUser(t *testing.T) {
	m, err := New(Options{Secret: testSecret, URLs: testURLs, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"", "a:b", ":"} {
		if c, err := m.Mint(user); err == nil {
			t.Errorf("Mint(%q) = %+v, want an error", user, c)
		}
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"valid", Options{Secret: testSecret, URLs: testURLs, TTL: time.Hour}, true},
		{"no secret", Options{URLs: testURLs, TTL: time.Hour}, false},
		{"no URLs", Options{Secret: testSecret, TTL: time.Hour}, false},
		{"stun URL", Options{Secret: testSecret, URLs: []string{"stun:stun.example.org"}, TTL: time.Hour}, false},
		{"no lifetime", Options{Secret: testSecret, URLs: testURLs}, false},
		{"negative lifetime", Options{Secret: testSecret, URLs: testURLs, TTL: -time.Hour}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.o)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok %v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), testSecret) {
				t.Errorf("error %q shows the secret", err)
			}
			if m != nil && m.now == nil {
				t.Errorf("no clock")
			}
		})
	}
}

func TestValidURL(t *testing.T) {
	for u, want := range map[string]bool{
		"turn:turn.example.org":                    true,
		"turn:turn.example.org:3478":               true,
		"turn:198.51.100.7:3478?transport=tcp":     true,
		"turns:turn.example.org:5349":              true,
		"turn:[2001:db8::1]:3478":                  true,
		"stun:stun.example.org:3478":               false,
		"turn:":                                    false,
		"turn://turn.example.org":                  false,
		"user:pass@turn:turn.example.org":          false,
		"turn:user@turn.example.org":               false,
		"http://turn.example.org":                  false,
		"TURN:turn.example.org":                    false,
		"turn:turn.example.org:3478?transport=udp": true,
	} {
		if got := ValidURL(u); got != want {
			t.Errorf("ValidURL(%q) = %v, want %v", u, got, want)
		}
	}
}

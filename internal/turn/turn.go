// Package turn mints time-limited credentials for a TURN server that
// checks them with a shared secret: coturn's "TURN REST API" scheme
// (use-auth-secret with static-auth-secret), which other TURN servers
// (eturnal, STUNner, Pion's) accept too.
//
// A credential is a username "<expiry>:<user>", where expiry is in Unix
// seconds, and the password base64(HMAC-SHA1(secret, username)). The TURN
// server recomputes the password from the username and refuses a username
// whose expiry has passed, so a credential seen by a stranger in a page
// lets them relay through the server only until it expires, and the user
// part names whom it was given to (in the server's logs and quotas).
package turn

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Options configure a Minter.
type Options struct {
	// Secret is the TURN server's static-auth-secret.
	Secret string
	// URLs are the turn: and turns: URLs the credentials are good for.
	URLs []string
	// TTL is how long a credential is valid after it is minted.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Minter mints credentials. It is safe for concurrent use.
type Minter struct {
	secret []byte
	urls   []string
	ttl    time.Duration
	now    func() time.Time
}

// Credentials are one time-limited TURN username and password, and the
// servers they open.
type Credentials struct {
	URLs     []string
	Username string
	Password string
	// Expires is when the TURN server stops accepting them (whole seconds).
	Expires time.Time
}

// New checks the options and returns a Minter.
func New(o Options) (*Minter, error) {
	if o.Secret == "" {
		return nil, errors.New("turn: no secret")
	}
	if len(o.URLs) == 0 {
		return nil, errors.New("turn: no TURN URLs")
	}
	for _, u := range o.URLs {
		if !ValidURL(u) {
			return nil, fmt.Errorf("turn: URL %q: want turn:host[:port] or turns:host[:port]", u)
		}
	}
	if o.TTL < time.Second {
		return nil, fmt.Errorf("turn: lifetime %v: want at least a second", o.TTL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Minter{secret: []byte(o.Secret), urls: append([]string(nil), o.URLs...), ttl: o.TTL, now: o.Now}, nil
}

// Mint returns credentials for user valid for at least the Minter's
// lifetime from now (see expiry). user must be non-empty and hold no ':', which separates the expiry
// from it (a client id, a UUID, qualifies).
func (m *Minter) Mint(user string) (Credentials, error) {
	if user == "" || strings.ContainsRune(user, ':') {
		return Credentials{}, fmt.Errorf("turn: user %q: want a non-empty name without ':'", user)
	}
	exp := m.expiry()
	username := strconv.FormatInt(exp.Unix(), 10) + ":" + user
	return Credentials{
		URLs:     append([]string(nil), m.urls...),
		Username: username,
		Password: Password(m.secret, username),
		Expires:  exp,
	}, nil
}

// expiry is now + TTL rounded up to the next multiple of half the TTL (in
// whole seconds, Unix time): never valid for less than the TTL, at most
// 1.5 times it, and the same for every credential a user is given within
// one half-TTL step, so however often a page is reloaded its client holds
// at most three valid usernames at any time (the TURN server's quotas
// per username then mean something).
func (m *Minter) expiry() time.Time { return Expiry(m.now(), m.ttl) }

// Expiry is when credentials minted at now with lifetime ttl expire: now
// + ttl rounded up to the next multiple of ttl/2 (whole seconds, Unix
// time).
func Expiry(now time.Time, ttl time.Duration) time.Time {
	step := max(int64(ttl/2/time.Second), 1)
	at := now.Add(ttl + time.Second - 1).Truncate(time.Second).Unix()
	return time.Unix((at+step-1)/step*step, 0)
}

// Password is the password a TURN server with this secret expects for
// username: base64(HMAC-SHA1(secret, username)).
func Password(secret []byte, username string) string {
	h := hmac.New(sha1.New, secret)
	h.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// ValidURL reports whether u is a turn: or turns: URL with a host
// (RFC 7065: turn:host[:port][?transport=udp|tcp]).
func ValidURL(u string) bool {
	rest, ok := strings.CutPrefix(u, "turn:")
	if !ok {
		rest, ok = strings.CutPrefix(u, "turns:")
	}
	if !ok {
		return false
	}
	host, _, _ := strings.Cut(rest, "?")
	return host != "" && !strings.HasPrefix(host, "/") && !strings.ContainsAny(host, " @/")
}

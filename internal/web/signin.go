package web

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"channels/internal/forwarded"
	"channels/internal/metrics"
	"channels/internal/store"
)

// Bounds on sign-in input, well above real names and passwords.
const (
	maxNameLen     = 64
	maxPasswordLen = 1024
)

type signInData struct {
	Name  string
	Error string
	// Next is the local path to return to after signing in, or "".
	Next string
}

// signInShow is the sign-in form. Its next parameter, the page that sent
// the browser here, rides along in the form once checked (localPath).
func (s *Server) signInShow(w http.ResponseWriter, r *http.Request) error {
	s.render(w, r, http.StatusOK, "signin.html", "Sign in", signInData{Next: formNext(r.URL.Query().Get("next"))})
	return nil
}

// formNext is a return path fit for the sign-in form: a checked local
// path, or "" for none.
func formNext(next string) string {
	if next = localPath(next); next == "/" {
		return ""
	}
	return next
}

// signInCheck signs a user in. Success gives the session a new token (no
// session fixation) and keeps its data, so the browser keeps its clients.
//
// Guessing is slowed by limits whose tokens are taken before the password
// is checked (so attempts arriving together cannot share one token) and,
// but for byAddr, given back on success, so that they count failures:
//
//   - byAddr: all attempts from one address, since each costs an argon2id
//     hash;
//   - byPair: failures for one name from one address, the limit a single
//     guesser meets;
//   - byName: failures for one name from anywhere, the limit guessers with
//     many addresses meet; its refill outpaces byPair's, so one address
//     alone cannot keep it empty;
//   - byDevice: failures from one trusted device of the named user, in
//     place of byPair and byName. A browser that signed in to the account
//     before carries a device cookie (see trustDevice), so strangers'
//     failures, which spend byName and byPair, never lock the owner out of
//     their own browsers, wherever they are and whoever shares their
//     address; a stolen device cookie still guesses slowly.
func (s *Server) signInCheck(w http.ResponseWriter, r *http.Request) error {
	form, err := readForm(r)
	if err != nil {
		return err
	}
	name, err := field(form, "name")
	if err != nil {
		return err
	}
	pass, err := field(form, "password")
	if err != nil {
		return err
	}
	next, err := field(form, "next")
	if err != nil {
		return err
	}
	next = formNext(next)
	name = strings.TrimSpace(name)
	again := func(status int, msg string) error {
		s.render(w, r, status, "signin.html", "Sign in", signInData{Name: name, Error: msg, Next: next})
		return nil
	}
	switch {
	case name == "" || pass == "":
		return again(http.StatusBadRequest, "Please enter your name and password.")
	case len(name) > maxNameLen || len(pass) > maxPasswordLen:
		return again(http.StatusBadRequest, "Wrong name or password.")
	}

	ctx := r.Context()
	now := s.now()
	addr, lname := clientAddr(r), strings.ToLower(name)
	limited := func(wait time.Duration, limit string) error {
		s.signInLimited(ctx, addr, name, limit)
		return &statusError{
			status:     http.StatusTooManyRequests,
			message:    "Too many sign-in attempts. Please wait a minute and try again.",
			retryAfter: wait,
		}
	}
	if ok, wait := s.byAddr.take(addr, now); !ok {
		return limited(wait, metrics.LimitSignInAddress)
	}

	u, err := s.store.UserByName(ctx, name)
	hash := u.PasswordHash
	if errors.Is(err, store.ErrNotFound) {
		if hash, err = s.dummyHash(); err != nil {
			return fmt.Errorf("make dummy hash: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("look up user %q: %w", name, err)
	}
	dev, err := s.device(r, now)
	if err != nil {
		return err
	}

	type held struct {
		l *limiter
		r *rate.Reservation
	}
	var taken []held
	refund := func() {
		for _, h := range taken {
			h.l.refund(h.r, now)
		}
	}
	take := func(l *limiter, key, limit string) error {
		res, ok, wait := l.reserve(key, now)
		if !ok {
			refund()
			return limited(wait, limit)
		}
		taken = append(taken, held{l, res})
		return nil
	}
	if trusted := u.ID != 0 && dev.user == u.ID; trusted {
		if err := take(s.byDevice, string(dev.hash), metrics.LimitSignInDevice); err != nil {
			return err
		}
	} else {
		if err := take(s.byPair, lname+"\x00"+addr, metrics.LimitSignInNameAddress); err != nil {
			return err
		}
		if err := take(s.byName, lname, metrics.LimitSignInName); err != nil {
			return err
		}
	}

	release, err := s.hashPlace(r)
	if err != nil {
		refund() // the password was not checked: no failure to pay for
		return err
	}
	ok, err := s.verify(pass, hash)
	release()
	if err != nil {
		return fmt.Errorf("verify password of %q: %w", name, err)
	}
	if !ok || u.ID == 0 {
		s.signInFailed(ctx, addr, name, u.ID == 0)
		return again(http.StatusUnauthorized, "Wrong name or password.")
	}
	refund()
	s.trustDevice(w, r, u, dev, now)

	if err := s.sessions.RenewToken(ctx); err != nil {
		return s.signInNotSaved(r, u, fmt.Errorf("renew session: %w", err))
	}
	s.sessions.Put(ctx, userKey, u.ID)
	s.keepSession(ctx)
	// The session is saved before the sign-in is logged or counted: a
	// sign-in whose session a full disk or a database outage refused did
	// not happen, and the log must not say it did.
	if err := s.commitSession(w, r); err != nil {
		return s.signInNotSaved(r, u, err)
	}
	s.log.InfoContext(ctx, "signed in", "user", u.Name)
	s.metrics.SignIn()
	// Back to the page that asked for the sign-in; formNext let only a
	// local path through.
	http.Redirect(w, r, cmp.Or(next, "/"), http.StatusSeeOther)
	return nil
}

// signInNotSaved is the answer to a right password whose session could
// not be stored: logged as the failure it is, and a page asking the person
// to try again shortly, rather than a sign-in that silently did not stick.
func (s *Server) signInNotSaved(r *http.Request, u store.User, err error) error {
	if r.Context().Err() != nil {
		return err // the browser went away; page logs it at debug
	}
	s.log.ErrorContext(r.Context(), "sign-in not saved", "user", u.Name, "err", err)
	return &statusError{
		status:     http.StatusServiceUnavailable,
		message:    "Signing in is not possible right now: the server could not save your sign-in. Please try again in a moment.",
		retryAfter: 5 * time.Second,
	}
}

// A trusted device is a browser that signed in: it holds a random token in
// a long-lived cookie (OWASP's "device cookie"), and the store keeps the
// token's SHA-256 with the user and an expiry. The cookie names the
// browser, not a session, so signing out keeps it; each sign-in replaces
// it with a new token (a copied cookie stops working once the owner signs
// in again) and a new expiry, deviceLifetime away. A password change
// forgets the user's devices (store.SetUserPassword).
const (
	deviceCookie       = "channels_device"
	deviceCookieSecure = "__Host-channels_device"
	deviceTokenLen     = 32
)

// trustedDevice is the device a sign-in request came from: the hash of its
// token and its user, when it carries a valid, unexpired device cookie.
type trustedDevice struct {
	hash []byte
	user int64
}

func (s *Server) deviceCookieName() string {
	if s.cfg.Secure() {
		// Like the session cookie's: Secure, host-only, whole site.
		return deviceCookieSecure
	}
	return deviceCookie
}

// device looks up the request's device cookie; a missing, malformed,
// unknown or expired one is no device.
func (s *Server) device(r *http.Request, now time.Time) (trustedDevice, error) {
	c, err := r.Cookie(s.deviceCookieName())
	if err != nil {
		return trustedDevice{}, nil
	}
	token, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(token) != deviceTokenLen {
		return trustedDevice{}, nil
	}
	h := sha256.Sum256(token)
	user, err := s.store.TrustedDeviceUser(r.Context(), h[:], now)
	if errors.Is(err, store.ErrNotFound) {
		return trustedDevice{}, nil
	}
	if err != nil {
		return trustedDevice{}, fmt.Errorf("look up trusted device: %w", err)
	}
	return trustedDevice{hash: h[:], user: user}, nil
}

// trustDevice makes the browser a trusted device of u, with a new token
// that replaces the one it had (dev). Failing to is logged, not fatal: the
// sign-in itself succeeded.
func (s *Server) trustDevice(w http.ResponseWriter, r *http.Request, u store.User, dev trustedDevice, now time.Time) {
	ctx := r.Context()
	token := make([]byte, deviceTokenLen)
	rand.Read(token) //nolint:errcheck // never fails (crypto/rand)
	h := sha256.Sum256(token)
	// The old token goes first, so that replacing it does not push out
	// the user's oldest other device.
	if dev.hash != nil {
		if err := s.store.DeleteTrustedDevice(ctx, dev.hash); err != nil {
			s.log.WarnContext(ctx, "forget replaced trusted device", "user", u.Name, "err", err)
		}
	}
	if err := s.store.AddTrustedDevice(ctx, u.ID, h[:], now.Add(deviceLifetime), maxDevices); err != nil {
		s.log.ErrorContext(ctx, "trust device", "user", u.Name, "err", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.deviceCookieName(),
		Value:    base64.RawURLEncoding.EncodeToString(token),
		Path:     "/",
		MaxAge:   int(deviceLifetime / time.Second),
		HttpOnly: true,
		Secure:   s.cfg.Secure(),
		SameSite: http.SameSiteLaxMode,
	})
}

// clientAddr is the rate-limiting key of the request's sender: its IP
// address, or its /64 for IPv6, where one host often owns a whole /64.
func clientAddr(r *http.Request) string { return forwarded.LimitKey(r.RemoteAddr) }

// hashPlace waits for one of the places for a password verification and
// returns the function that gives it back. A busy server answers 503
// rather than queue without bound.
func (s *Server) hashPlace(r *http.Request) (release func(), err error) {
	wait := time.NewTimer(s.hashWait)
	defer wait.Stop()
	select {
	case s.hashing <- struct{}{}:
		return func() { <-s.hashing }, nil
	case <-wait.C:
		s.log.WarnContext(r.Context(), "sign-in refused: password checks busy", "addr", clientAddr(r))
		s.metrics.RateLimited(metrics.LimitPasswordChecks)
		return nil, &statusError{
			status:     http.StatusServiceUnavailable,
			message:    "The server is busy. Please try again in a moment.",
			retryAfter: 5 * time.Second,
		}
	case <-r.Context().Done():
		return nil, fmt.Errorf("wait to check a password: %w", r.Context().Err())
	}
}

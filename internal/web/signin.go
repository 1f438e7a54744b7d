package web

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"channels/internal/password"
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
}

// signInShow is the sign-in form.
func (s *Server) signInShow(w http.ResponseWriter, r *http.Request) error {
	s.render(w, r, http.StatusOK, "signin.html", "Sign in", signInData{})
	return nil
}

// signInCheck signs a user in. Success gives the session a new token (no
// session fixation) and keeps its data, so the browser keeps its clients.
//
// Guessing is slowed by three limits, and only the first counts every
// attempt; the others count failures, so that nobody else's failures
// block the owner who knows the password:
//
//   - byAddr: all attempts from one address, since each costs an argon2id
//     hash;
//   - byPair: failures for one name from one address, the limit a single
//     guesser meets;
//   - byName: failures for one name from anywhere, the limit guessers with
//     many addresses meet. It neither applies to nor counts an address
//     that signed in to that name before (known), so they cannot lock the
//     owner out of the places the owner signs in from; its refill outpaces
//     byPair's, so one address alone cannot keep it empty.
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
	name = strings.TrimSpace(name)
	again := func(status int, msg string) error {
		s.render(w, r, status, "signin.html", "Sign in", signInData{Name: name, Error: msg})
		return nil
	}
	switch {
	case name == "" || pass == "":
		return again(http.StatusBadRequest, "Please enter your name and password.")
	case len(name) > maxNameLen || len(pass) > maxPasswordLen:
		return again(http.StatusBadRequest, "Wrong name or password.")
	}

	now := s.now()
	addr, lname := clientAddr(r), strings.ToLower(name)
	pair := lname + "\x00" + addr
	limited := func(wait time.Duration, which string) error {
		s.log.WarnContext(r.Context(), "sign-in rate limited", "addr", addr, "name", name, "limit", which)
		return &statusError{
			status:     http.StatusTooManyRequests,
			message:    "Too many sign-in attempts. Please wait a minute and try again.",
			retryAfter: wait,
		}
	}
	if ok, wait := s.byAddr.take(addr, now); !ok {
		return limited(wait, "address")
	}
	if ok, wait := s.byPair.check(pair, now); !ok {
		return limited(wait, "name and address")
	}
	known := s.known.has(pair, now)
	if !known {
		if ok, wait := s.byName.check(lname, now); !ok {
			return limited(wait, "name")
		}
	}

	u, err := s.store.UserByName(r.Context(), name)
	hash := u.PasswordHash
	if errors.Is(err, store.ErrNotFound) {
		if hash, err = s.dummyHash(); err != nil {
			return fmt.Errorf("make dummy hash: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("look up user %q: %w", name, err)
	}
	ok, err := password.Verify(pass, hash)
	if err != nil {
		return fmt.Errorf("verify password of %q: %w", name, err)
	}
	if !ok || u.ID == 0 {
		s.byPair.charge(pair, now)
		if !known {
			s.byName.charge(lname, now)
		}
		return again(http.StatusUnauthorized, "Wrong name or password.")
	}
	s.known.add(pair, now)

	if err := s.sessions.RenewToken(r.Context()); err != nil {
		return fmt.Errorf("renew session: %w", err)
	}
	s.sessions.Put(r.Context(), userKey, u.ID)
	s.log.InfoContext(r.Context(), "signed in", "user", u.Name)
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

// clientAddr is the rate-limiting key of the request's sender: its IP
// address, or its /64 for IPv6, where one host often owns a whole /64.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

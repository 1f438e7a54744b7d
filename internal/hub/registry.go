package hub

import (
	"sync"
	"sync/atomic"
)

// registry is where connections meet: every live connection, sessions by
// sessid, logged-in connections by user (id@domain), subscriptions by event
// channel, and open sockets per address. One lock guards it all; nothing in
// it blocks (queueing a frame never waits), so the lock is held briefly.
type registry struct {
	mu       sync.RWMutex
	conns    map[*conn]struct{}
	sessions map[string]*conn
	users    map[string][]*conn
	channels map[string][]*sub
	perAddr  map[string]int
}

// regState is the part of a connection the registry owns, guarded by
// registry.mu.
type regState struct {
	uid, sessid string
	subs        map[string]*sub
	gone        bool // unregistered (punted or closed)
}

// sub is one connection's subscription to one event channel, with its own
// event serial number (mod_verto's per-subscription eventSerno, from 0).
type sub struct {
	c       *conn
	channel string
	serno   atomic.Uint64
}

func newRegistry() *registry {
	return &registry{
		conns:    make(map[*conn]struct{}),
		sessions: make(map[string]*conn),
		users:    make(map[string][]*conn),
		channels: make(map[string][]*sub),
		perAddr:  make(map[string]int),
	}
}

func (r *registry) admitAddress(ip string, limit int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perAddr[ip] >= limit {
		return false
	}
	r.perAddr[ip]++
	return true
}

func (r *registry) releaseAddress(ip string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perAddr[ip] <= 1 {
		delete(r.perAddr, ip)
	} else {
		r.perAddr[ip]--
	}
}

func (r *registry) add(c *conn) {
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.mu.Unlock()
}

func (r *registry) all() []*conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*conn, 0, len(r.conns))
	for c := range r.conns {
		out = append(out, c)
	}
	return out
}

// eachConn calls fn for every live connection under the read lock. fn
// must not block.
func (r *registry) eachConn(fn func(*conn)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for c := range r.conns {
		fn(c)
	}
}

// attachResult says how binding a session went.
type attachResult int

const (
	attached     attachResult = iota
	sessionInUse              // the sessid belongs to another user
	tooManyConns              // the user has MaxConnsPerClient connections
)

// attach binds c, authenticated as uid, to sessid. A connection of the same
// user holding that sessid is taken over: it is unregistered and returned so
// the caller can punt it.
func (r *registry) attach(c *conn, sessid, uid string, limit int) (attachResult, *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.sessions[sessid]
	if prev == c {
		prev = nil
	}
	if prev != nil && prev.rs.uid != uid {
		return sessionInUse, nil
	}
	n := len(r.users[uid])
	if prev != nil {
		n-- // the taken-over connection leaves
	}
	if n >= limit {
		return tooManyConns, nil
	}
	if prev != nil {
		r.unregisterLocked(prev)
	}
	r.sessions[sessid] = c
	r.users[uid] = append(r.users[uid], c)
	c.rs.uid, c.rs.sessid = uid, sessid
	return attached, prev
}

// changeUser moves a logged-in connection to another user after a second
// login on the same socket.
func (r *registry) changeUser(c *conn, from, to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.rs.gone {
		return
	}
	c.rs.uid = to
	r.users[from] = removeConn(r.users[from], c)
	if len(r.users[from]) == 0 {
		delete(r.users, from)
	}
	r.users[to] = append(r.users[to], c)
}

// remove unregisters c for good: its session, user entry, subscriptions.
func (r *registry) remove(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
	r.unregisterLocked(c)
}

func (r *registry) unregisterLocked(c *conn) {
	c.rs.gone = true
	if c.rs.sessid != "" && r.sessions[c.rs.sessid] == c {
		delete(r.sessions, c.rs.sessid)
	}
	if c.rs.uid != "" {
		if l := removeConn(r.users[c.rs.uid], c); len(l) == 0 {
			delete(r.users, c.rs.uid)
		} else {
			r.users[c.rs.uid] = l
		}
	}
	for ch, s := range c.rs.subs {
		r.dropSubLocked(ch, s)
	}
	c.rs.subs = nil
}

func (r *registry) dropSubLocked(ch string, s *sub) {
	l := r.channels[ch]
	for i, x := range l {
		if x == s {
			l = append(l[:i:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(r.channels, ch)
	} else {
		r.channels[ch] = l
	}
}

func removeConn(l []*conn, c *conn) []*conn {
	for i, x := range l {
		if x == c {
			return append(l[:i:i], l[i+1:]...)
		}
	}
	return l
}

// subscribe adds c to channel; false if it was already subscribed.
func (r *registry) subscribe(c *conn, channel string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.rs.gone {
		return true // a punted connection: it is closing, pretend success
	}
	if _, ok := c.rs.subs[channel]; ok {
		return false
	}
	s := &sub{c: c, channel: channel}
	if c.rs.subs == nil {
		c.rs.subs = make(map[string]*sub)
	}
	c.rs.subs[channel] = s
	r.channels[channel] = append(r.channels[channel], s)
	return true
}

// unsubscribe removes c from channel; false if it was not subscribed.
func (r *registry) unsubscribe(c *conn, channel string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := c.rs.subs[channel]
	if !ok {
		return false
	}
	delete(c.rs.subs, channel)
	r.dropSubLocked(channel, s)
	return true
}

// eachSub calls fn for every subscription to channel, in subscription
// order, under the read lock. fn must not block.
func (r *registry) eachSub(channel string, fn func(*sub)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.channels[channel] {
		fn(s)
	}
}

// eachUserConn calls fn for every connection logged in as uid, under the
// read lock. fn must not block.
func (r *registry) eachUserConn(uid string, fn func(*conn)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, c := range r.users[uid] {
		fn(c)
	}
}

// counts reports the registry's sizes, for tests.
func (r *registry) counts() (conns, sessions, users, channels int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.conns), len(r.sessions), len(r.users), len(r.channels)
}

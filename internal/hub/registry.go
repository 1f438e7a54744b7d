package hub

import (
	"sync"
	"sync/atomic"
	"time"
)

// registry is where connections meet: every live connection, sessions by
// login and sessid, logged-in connections by user (id@domain), the users
// present in each event channel they are allowed, subscriptions by event
// channel, and open sockets per address. One lock guards it all; nothing
// in it blocks (queueing a frame never waits), so the lock is held briefly.
type registry struct {
	mu       sync.RWMutex
	conns    map[*conn]struct{}
	sessions map[sessionKey]*conn
	users    map[string]*member
	present  map[string]map[string]struct{} // allowed channel → users with a live connection
	channels map[string]*topic
	perAddr  map[string]int
	refused  refusals // users removed lately, whose logins are refused (remove.go)
	fab      Fabric   // nil: one process (see fabric.go)
}

// sessionKey names a session by login and sessid together, so a sessid
// that another user knows (every broadcast carries it) can never make this
// user's login fail: mod_verto keys sessions by sessid alone, which lets
// anyone who learns it squat it.
type sessionKey struct{ uid, sessid string }

// member is one user's live connections and the address of its latest
// login, which its disconnect report carries.
type member struct {
	conns     []*conn
	loginAddr string
}

// topic is one event channel's subscriptions. Its lock serialises fan-outs
// to the channel, so that every subscriber sees events in the order of
// their eventSerno even when several members broadcast at once.
type topic struct {
	fanOut sync.Mutex
	subs   []*sub
}

// regState is the part of a connection the registry owns, guarded by
// registry.mu.
type regState struct {
	uid, sessid string
	homes       []string // the event channels the user is allowed (nil: any)
	subs        map[string]*sub
	gone        bool  // unregistered (punted or closed)
	at          int64 // the login's stamp (Fabric.Stamp), which orders takeovers between hubs
	placed      bool  // holds a place the fabric admitted (released on unregister)
}

// sub is one connection's subscription to one event channel, with its own
// event serial number (mod_verto's per-subscription eventSerno, from 0).
type sub struct {
	c       *conn
	channel string
	serno   atomic.Uint64
}

func newRegistry(fab Fabric) *registry {
	return &registry{
		fab:      fab,
		conns:    make(map[*conn]struct{}),
		sessions: make(map[sessionKey]*conn),
		users:    make(map[string]*member),
		present:  make(map[string]map[string]struct{}),
		channels: make(map[string]*topic),
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
	tooManyConns              // the user has MaxConnsPerClient connections
	channelFull               // a channel of the user has MaxClientsPerChannel users present
	limitUnknown              // the cluster cannot count a channel's users now (Fabric.Admit: Undecided)
	userRemoved               // the user was removed lately (Hub.Remove)
)

// login is what attach needs to know of an authenticated connection.
type login struct {
	uid, sessid, addr string
	homes             []string // allowed event channels; nil: any
	at                int64    // its stamp (Fabric.Stamp); 0 without a fabric
	placed            bool     // the fabric admitted it (Fabric.Admit)
}

// attach binds c to the session (uid, sessid). A connection of the same
// user holding that sessid is taken over: it is unregistered and returned
// so the caller can punt it. maxConns bounds the user's connections;
// maxUsers, when positive, the users present in each of its channels — a
// user already present there always gets in, so reconnects and second tabs
// never count twice, and the check and the registration happen under one
// lock, so simultaneous logins cannot overshoot. A user removed lately
// (remove.go) is refused.
func (r *registry) attach(c *conn, l login, maxConns, maxUsers int) (attachResult, *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Under the lock that Remove takes to close the user's connections:
	// a login attaches either before (and is closed with them) or after
	// (and sees the refusal).
	if r.refused.has(l.uid, time.Now) {
		return userRemoved, nil
	}
	key := sessionKey{l.uid, l.sessid}
	prev := r.sessions[key]
	if prev == c {
		prev = nil
	}
	m := r.users[l.uid]
	n := 0
	if m != nil {
		n = len(m.conns)
	}
	if prev != nil {
		n-- // the taken-over connection leaves
	}
	if r.fab != nil {
		n += r.fab.RemoteConns(l.uid)
	}
	if n >= maxConns {
		return tooManyConns, nil
	}
	if maxUsers > 0 && m == nil {
		for _, ch := range l.homes {
			if len(r.present[ch]) >= maxUsers {
				return channelFull, nil
			}
		}
	}
	if prev != nil {
		r.unregisterLocked(prev)
	}
	r.joinLocked(c, l)
	r.sessions[key] = c
	c.rs.sessid = l.sessid
	c.rs.at = l.at
	c.rs.placed = l.placed
	return attached, prev
}

// joinLocked adds c to its user's connections; the user enters its
// channels with its first connection.
func (r *registry) joinLocked(c *conn, l login) {
	m := r.users[l.uid]
	if m == nil {
		m = &member{}
		r.users[l.uid] = m
		r.enterLocked(l.uid, l.homes)
	}
	m.conns = append(m.conns, c)
	m.loginAddr = l.addr
	c.rs.uid, c.rs.homes = l.uid, l.homes
	if r.fab != nil {
		r.fab.UserChanged(r.memberOf(l.uid, m, l.homes))
	}
}

func (r *registry) enterLocked(uid string, homes []string) {
	for _, ch := range homes {
		p := r.present[ch]
		if p == nil {
			p = make(map[string]struct{})
			r.present[ch] = p
		}
		p[uid] = struct{}{}
	}
}

func (r *registry) leaveLocked(uid string, homes []string) {
	for _, ch := range homes {
		if p := r.present[ch]; p != nil {
			delete(p, uid)
			if len(p) == 0 {
				delete(r.present, ch)
			}
		}
	}
}

// relogin records a second login of the same user on a bound connection
// (the hub refuses one as another user): the allowed channels and the
// latest login address may change; the session stays.
func (r *registry) relogin(c *conn, l login) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.users[l.uid]
	if c.rs.gone || c.rs.uid != l.uid || m == nil {
		return
	}
	r.leaveLocked(l.uid, c.rs.homes)
	r.enterLocked(l.uid, l.homes)
	c.rs.homes = l.homes
	m.loginAddr = l.addr
	if r.fab != nil {
		r.fab.UserChanged(r.memberOf(l.uid, m, l.homes))
	}
}

// dropUserConnLocked removes c from its user's connections; the user
// leaves its channels with its last connection.
func (r *registry) dropUserConnLocked(c *conn) (last bool, addr string) {
	m := r.users[c.rs.uid]
	if m == nil {
		return false, ""
	}
	m.conns = removeConn(m.conns, c)
	if len(m.conns) > 0 {
		if r.fab != nil {
			r.fab.UserChanged(r.memberOf(c.rs.uid, m, c.rs.homes))
		}
		return false, ""
	}
	delete(r.users, c.rs.uid)
	r.leaveLocked(c.rs.uid, c.rs.homes)
	if r.fab != nil {
		r.fab.UserLeft(c.rs.uid)
	}
	return true, m.loginAddr
}

// remove unregisters c for good: its session, user entry, subscriptions.
// last says whether it was its user's last live connection, and addr is
// then the address of the user's latest login.
func (r *registry) remove(c *conn) (last bool, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
	return r.unregisterLocked(c)
}

func (r *registry) unregisterLocked(c *conn) (last bool, addr string) {
	if c.rs.gone {
		return false, ""
	}
	c.rs.gone = true
	key := sessionKey{c.rs.uid, c.rs.sessid}
	if c.rs.sessid != "" && r.sessions[key] == c {
		delete(r.sessions, key)
	}
	if c.rs.uid != "" {
		last, addr = r.dropUserConnLocked(c)
	}
	if c.rs.placed {
		c.rs.placed = false
		r.fab.Release(c.rs.uid)
	}
	for ch, s := range c.rs.subs {
		r.dropSubLocked(ch, s)
	}
	c.rs.subs = nil
	return last, addr
}

func (r *registry) dropSubLocked(ch string, s *sub) {
	t := r.channels[ch]
	if t == nil {
		return
	}
	for i, x := range t.subs {
		if x == s {
			// A new slice: a fan-out may still be walking the old one.
			t.subs = append(t.subs[:i:i], t.subs[i+1:]...)
			if r.fab != nil {
				r.fab.Unsubscribed(ch)
			}
			break
		}
	}
	if len(t.subs) == 0 {
		delete(r.channels, ch)
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

// subscribeResult says how a subscription went.
type subscribeResult int

const (
	subscribed subscribeResult = iota
	alreadySubscribed
	tooManySubs // the connection holds limit subscriptions
)

// subscribe adds c to channel, unless c already holds limit subscriptions.
func (r *registry) subscribe(c *conn, channel string, limit int) subscribeResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.rs.gone {
		return subscribed // a punted connection: it is closing, pretend success
	}
	if _, ok := c.rs.subs[channel]; ok {
		return alreadySubscribed
	}
	if len(c.rs.subs) >= limit {
		return tooManySubs
	}
	s := &sub{c: c, channel: channel}
	if c.rs.subs == nil {
		c.rs.subs = make(map[string]*sub)
	}
	c.rs.subs[channel] = s
	t := r.channels[channel]
	if t == nil {
		t = &topic{}
		r.channels[channel] = t
	}
	t.subs = append(t.subs[:len(t.subs):len(t.subs)], s)
	if r.fab != nil {
		r.fab.Subscribed(channel)
	}
	return subscribed
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
// order. Fan-outs to one channel run one at a time (the topic's lock), so
// each subscriber's eventSerno order is its delivery order; they do not
// hold the registry lock, which (un)subscribes replace rather than change
// the slice under. fn must not block.
func (r *registry) eachSub(channel string, fn func(*sub)) {
	r.mu.RLock()
	t := r.channels[channel]
	r.mu.RUnlock()
	if t == nil {
		return
	}
	t.fanOut.Lock()
	defer t.fanOut.Unlock()
	r.mu.RLock()
	subs := t.subs
	r.mu.RUnlock()
	for _, s := range subs {
		fn(s)
	}
}

// eachUserConn calls fn for every connection logged in as uid, with the
// event channels that connection's user is allowed, under the read lock.
// fn must not block.
func (r *registry) eachUserConn(uid string, fn func(c *conn, homes []string)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if m := r.users[uid]; m != nil {
		for _, c := range m.conns {
			fn(c, c.rs.homes)
		}
	}
}

// counts reports the registry's sizes, for tests.
func (r *registry) counts() (conns, sessions, users, channels int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.conns), len(r.sessions), len(r.users), len(r.channels)
}

package hub

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// What the hub does while its gateway fails — Channels' /fsapi handlers
// with their database unreachable, or restarting:
//
//   - A login is not refused as "Login Incorrect": it waits, up to
//     Options.LoginWait, for the gateway to answer again, and is then
//     answered as usual; still failing, it gets CodeUnavailable ("Server
//     error, try again shortly"), on which the browser reconnects with
//     its normal backoff. While the gateway is known to fail, the waiting
//     logins do not each ask it: one probe every probeEvery asks for all,
//     and the first answer wakes them all.
//   - A login or disconnect report the gateway failed to take is not lost:
//     the hub remembers the user (at most maxDirty of them) and, once the
//     gateway answers again, reports the user's state as it is then — a
//     disconnect for each address whose report failed and that is no
//     longer its live connection, then a login with the address of its
//     live connection, if it has one. Each user goes through the
//     reporter's queue as a resync item whose worker reads the user's
//     state only when it comes to it, so the reports keep their order with
//     those of new logins and disconnects; and at most resyncRoom of them
//     are queued per worker at a time, so that a connection's report never
//     waits behind a re-report.

// errGatewayDown is a login's error when the gateway failed during all of
// LoginWait.
var errGatewayDown = errors.New("hub: gateway failing")

const (
	// probeEvery is how often, while the gateway fails, one waiting login
	// asks it again, and how often the re-reports probe it.
	probeEvery = 250 * time.Millisecond
	// resyncEvery is how often re-reports are tried while the gateway
	// fails and no login finds it back.
	resyncEvery = time.Second
	// maxDirty bounds the users whose failed reports are remembered; past
	// it, one is forgotten (its state is right again at its next login or
	// disconnect, or at the cluster's reconcile).
	maxDirty = 100_000
	// maxDirtyAddrs bounds the addresses remembered per user.
	maxDirtyAddrs = 8
	// resyncRoom bounds the resyncs queued per report worker: the rest
	// wait, remembered, until the worker has sent those, so that a large
	// re-report after an outage never fills a queue a connection's report
	// then waits on.
	resyncRoom = 64
)

// outage is the hub's view of whether its gateway answers, and the users
// whose reports it failed to take.
type outage struct {
	isDown atomic.Bool // down, for the answers' fast path
	mu     sync.Mutex
	down   bool
	next   time.Time     // while down: when the next probe may go
	up     chan struct{} // while down: closed when the gateway answers again
	dirty  map[string][]string
	lost   int           // users forgotten because dirty was full
	kick   chan struct{} // wakes resync: something is dirty, or the gateway is back
}

func newOutage() *outage {
	return &outage{dirty: map[string][]string{}, kick: make(chan struct{}, 1)}
}

// turn says whether the caller may ask the gateway now: always while it
// answers; while it fails, one caller per probeEvery. Others get the
// channel closed when it answers again and how long until the next probe.
func (o *outage) turn(now time.Time) (probe bool, up <-chan struct{}, wait time.Duration) {
	if !o.isDown.Load() {
		return true, nil, 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.down {
		return true, nil, 0
	}
	if !now.Before(o.next) {
		o.next = now.Add(probeEvery)
		return true, nil, 0
	}
	return false, o.up, o.next.Sub(now)
}

// failed records a failure of the gateway; it reports whether the gateway
// was answering until then.
func (o *outage) failed(now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return false
	}
	o.down, o.up, o.next = true, make(chan struct{}), now.Add(probeEvery)
	o.isDown.Store(true)
	return true
}

// answered records an answer of the gateway; it reports whether the
// gateway was failing until then (and wakes whoever waits for it).
func (o *outage) answered() bool {
	if !o.isDown.Load() {
		return false
	}
	o.mu.Lock()
	if !o.down {
		o.mu.Unlock()
		return false
	}
	o.down = false
	o.isDown.Store(false)
	close(o.up)
	o.up = nil
	o.mu.Unlock()
	o.wake()
	return true
}

func (o *outage) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// remember notes that a report about id (the login name, without the
// domain) from addr was not taken.
func (o *outage) remember(id, addr string) {
	o.mu.Lock()
	addrs, ok := o.dirty[id]
	switch {
	case !ok && len(o.dirty) >= maxDirty:
		o.lost++
	case len(addrs) < maxDirtyAddrs && !containsString(addrs, addr):
		o.dirty[id] = append(addrs, addr)
	case !ok:
		o.dirty[id] = addrs
	}
	o.mu.Unlock()
	o.wake()
}

// take removes and returns at most n dirty users (n <= 0: all), and how
// many were forgotten since the last call.
func (o *outage) take(n int) (map[string][]string, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	lost := o.lost
	o.lost = 0
	if n <= 0 || len(o.dirty) <= n {
		all := o.dirty
		o.dirty = map[string][]string{}
		return all, lost
	}
	some := make(map[string][]string, n)
	for id, addrs := range o.dirty {
		if len(some) == n {
			break
		}
		some[id] = addrs
		delete(o.dirty, id)
	}
	return some, lost
}

// restore gives back users take returned that could not be re-reported
// yet, keeping any address remembered since.
func (o *outage) restore(users map[string][]string) {
	if len(users) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, addrs := range users {
		now, ok := o.dirty[id]
		if !ok && len(o.dirty) >= maxDirty {
			o.lost++
			continue
		}
		for _, a := range addrs {
			if len(now) < maxDirtyAddrs && !containsString(now, a) {
				now = append(now, a)
			}
		}
		o.dirty[id] = now
	}
}

// pending reports how many users wait for a re-report.
func (o *outage) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.dirty)
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// failingGateway is a Gateway that tells a failure from an answer, as
// (*fsapi.Registry).RespondErr does.
type failingGateway interface {
	RespondErr(ctx context.Context, form url.Values) ([]byte, error)
}

// respond asks the gateway; err is non-nil when it failed rather than
// answered (only a failingGateway can say so).
func (h *Hub) respond(ctx context.Context, form url.Values) ([]byte, error) {
	if g, ok := h.opts.Gateway.(failingGateway); ok {
		return g.RespondErr(ctx, form)
	}
	return h.opts.Gateway.Respond(ctx, form), nil
}

// lookup asks the gateway for user id and parses the answer. While the
// gateway fails it waits for it, up to LoginWait (see outage), unless ctx
// ends or stopping says the connection is closing; err is then the
// failure.
func (h *Hub) lookup(ctx context.Context, id string, stopping func() bool) (*dirUser, bool, error) {
	start := time.Now()
	deadline := start.Add(h.opts.LoginWait)
	for first := true; ; first = false {
		now := time.Now()
		probe, up, wait := h.outage.turn(now)
		if probe {
			timeout := h.opts.GatewayTimeout
			if !first || h.outage.isDown.Load() {
				// A known outage: the probe may take only what is left of
				// the wait, so that the browser hears -32013 before its own
				// login timeout (10 s) rather than nothing.
				timeout = min(timeout, max(deadline.Sub(now), probeEvery))
			}
			user, found, err := h.lookupOnce(ctx, id, timeout)
			if err == nil {
				if h.outage.answered() {
					h.log.Info("verto: gateway answers again", "waited", time.Since(start).Round(time.Millisecond))
				}
				return user, found, nil
			}
			// A lookup cut short by its own connection (closed, shut down)
			// says nothing of the gateway.
			if ctx.Err() == nil && h.outage.failed(time.Now()) {
				h.log.Warn("verto: gateway failing; logins wait for it", "user", id, "wait", h.opts.LoginWait)
			}
			if !time.Now().Before(deadline) || ctx.Err() != nil || stopping() {
				return nil, false, err
			}
			continue
		}
		left := time.Until(deadline)
		if left <= 0 || stopping() {
			return nil, false, errGatewayDown
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false, ctx.Err()
		case <-up:
			t.Stop()
		case <-t.C:
		}
	}
}

// lookupOnce asks the gateway once.
func (h *Hub) lookupOnce(ctx context.Context, id string, timeout time.Duration) (*dirUser, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	doc, err := h.respond(ctx, h.directoryForm(id, time.Now()))
	if err != nil {
		return nil, false, err
	}
	user, found := parseDirectory(doc, h.opts.Domain, id)
	return user, found, nil
}

// reported notes how the gateway took a report: a failed login (success)
// or disconnect report makes its user dirty.
func (h *Hub) reported(form url.Values, err error) {
	if err == nil {
		if h.outage.answered() {
			h.log.Info("verto: gateway answers again")
		}
		return
	}
	action := form.Get("action")
	if action == "verto_client_login" && form.Get("success") != "1" {
		return // a failed login changes no connected state
	}
	id, _, _ := strings.Cut(form.Get("login"), "@")
	h.outage.failed(time.Now())
	h.outage.remember(id, form.Get("address"))
	h.log.Warn("verto: report not taken; it is made again when the gateway answers", "action", action, "user", id)
}

// resync re-reports the dirty users' state once the gateway answers: at
// once when a login or a report finds it back, else every resyncEvery
// with one user as the probe; and, while users are left, each time a
// worker has sent the resyncs it was given. It runs until the hub's root
// context ends.
func (h *Hub) resync() {
	t := time.NewTicker(resyncEvery)
	defer t.Stop()
	for {
		tick := false
		select {
		case <-h.root.Done():
			return
		case <-h.outage.kick:
		case <-t.C:
			tick = true
		}
		if h.outage.pending() == 0 {
			continue
		}
		n := h.reports.room()
		if h.outage.isDown.Load() {
			if !tick {
				continue // a failed re-report kicks too: probe on the tick only
			}
			n = min(n, 1) // a probe: its answer, if any, kicks the rest
		}
		if n == 0 {
			continue // the workers' resyncs wake this loop when sent
		}
		if !h.resyncPass(n) {
			return
		}
	}
}

// resyncPass queues a resync of at most n dirty users, never waiting for
// room: those whose worker has no room stay dirty for a later pass. false
// once the hub is shutting down. It holds h.wg while it queues, so that
// Shutdown closes the reporter only after it.
func (h *Hub) resyncPass(n int) bool {
	if !h.hold() {
		return false
	}
	defer h.wg.Done()
	users, lost := h.outage.take(n)
	if lost > 0 {
		h.log.Warn("verto: too many failed reports remembered; some connected states stay wrong until their next login",
			"forgotten", lost)
	}
	queued := 0
	for id, addrs := range users {
		if h.reports.tryResync(id, addrs) {
			delete(users, id)
			queued++
		}
	}
	h.outage.restore(users)
	if queued > 0 && n > 1 {
		left := h.outage.pending()
		h.log.Debug("verto: reporting again the state of users whose reports failed", "users", queued, "left", left)
		if left == 0 {
			h.log.Info("verto: the state of every user whose reports failed is being reported again")
		}
	}
	return true
}

// loginAddrOf returns the address of uid's latest login and whether uid
// has a live connection here.
func (r *registry) loginAddrOf(uid string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.users[uid]
	if m == nil || len(m.conns) == 0 {
		return "", false
	}
	return m.loginAddr, true
}

package hub

import (
	"sync"
	"time"

	"channels/internal/verto"
)

// leaves tells a member's channels that it left when its last connection
// closes without its goodbye (a crashed tab, a lost network, a closed
// laptop lid), as it would have said it: Options.LeaveParams stamped with
// its userid, through the channel's normal fan-out (so across the cluster
// too). It waits Options.LeaveGrace first, and says nothing if the member
// is back by then, here or on another hub: a reload or a reconnect
// neither flickers nor races its own hello. One timer per member at most.
//
// A hub shutting down schedules none and drops those due: its members'
// browsers reconnect to another process (or to it, restarted), and one
// that never comes back is dropped by the others' heartbeat expiry.
type leaves struct {
	mu        sync.Mutex
	pending   map[string]*time.Timer // uid → its leave, due or being delivered
	scheduled int                    // leaves ever scheduled, for tests
	stopped   bool
}

// leaveSoon schedules uid's leave from its allowed channels. Called from a
// connection's loop, which holds h.wg, so the Add below never races Wait.
func (h *Hub) leaveSoon(uid string, homes []string) {
	if h.opts.LeaveParams == nil || len(homes) == 0 {
		return
	}
	l := &h.leaves
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.scheduled++
	if t := l.pending[uid]; t != nil && t.Stop() {
		h.wg.Done()
	}
	if l.pending == nil {
		l.pending = make(map[string]*time.Timer)
	}
	h.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(h.opts.LeaveGrace, func() {
		defer h.wg.Done()
		h.leave(uid, homes)
		l.mu.Lock()
		if l.pending[uid] == t {
			delete(l.pending, uid)
		}
		l.mu.Unlock()
	})
	l.pending[uid] = t
}

// leave delivers uid's leave to its channels unless it is present again.
func (h *Hub) leave(uid string, homes []string) {
	if h.reg.isMember(uid) || h.presentElsewhere(uid) {
		return
	}
	now := time.Now()
	for _, ch := range homes {
		p, ok := h.leaveParams(uid, ch)
		if !ok {
			continue
		}
		// Paid like the goodbye it stands for, so that a reconnect loop
		// buys no free broadcasts.
		h.budgets.charge(uid, true, len(p.Marshal()), now)
		h.opts.Metrics.Broadcast()
		h.fanOut(ch, p)
	}
}

// stopLeaves drops the leaves due and schedules no more (Shutdown).
func (h *Hub) stopLeaves() {
	l := &h.leaves
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	for uid, t := range l.pending {
		if t.Stop() {
			h.wg.Done()
		}
		delete(l.pending, uid)
	}
}

// leaveParams are the params of uid's leave from channel, stamped with its
// userid; false without Options.LeaveParams or when they do not parse.
func (h *Hub) leaveParams(uid, channel string) (verto.Params, bool) {
	if h.opts.LeaveParams == nil {
		return nil, false
	}
	p, ok := verto.ParseParams(h.opts.LeaveParams(channel))
	if ok {
		p.Set("userid", verto.Quote(uid))
	}
	return p, ok
}

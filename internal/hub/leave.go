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
type leaves struct {
	mu      sync.Mutex
	pending map[string]*time.Timer // uid → its leave, due
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
		l.mu.Lock()
		if l.pending[uid] == t {
			delete(l.pending, uid)
		}
		l.mu.Unlock()
		h.leave(uid, homes)
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
		p, ok := verto.ParseParams(h.opts.LeaveParams(ch))
		if !ok {
			continue
		}
		p.Set("userid", verto.Quote(uid))
		// Paid like the goodbye it stands for, so that a reconnect loop
		// buys no free broadcasts.
		h.budgets.charge(uid, true, len(p.Marshal()), now)
		h.opts.Metrics.Broadcast()
		h.fanOut(ch, p)
	}
}

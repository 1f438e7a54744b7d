package hub

import (
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Removing a member (a channel's owner took it out): every connection of
// its login, on every hub of the cluster, is closed with StatusRemoved,
// and for Options.RemovedRefusal every hub refuses its logins, whatever
// the Gateway answers. The directory refuses them too (for as long as the
// owner chose); this refusal covers the moments before the directory's
// answers catch up, and the logins that race the removal.

// StatusRemoved is the WebSocket close code of a connection whose member
// was removed, or whose login was refused because it was; the close
// frame's reason is ReasonRemoved. A browser that reads it knows not to
// reconnect (4000–4999 are the application's own codes).
const (
	StatusRemoved websocket.StatusCode = 4003
	ReasonRemoved                      = "removed"
)

// loginRemoved is the reason a refused login of a removed member is
// counted under in channels_hub_login_failures_total (until
// internal/metrics lists it, it is counted as "other").
const loginRemoved = "removed"

// maxRefused bounds the users whose logins are refused after a removal:
// far more than a site removes in RemovedRefusal. Past it the refusal
// ending first is forgotten early, which only leaves that user to the
// directory.
const maxRefused = 10_000

// Remove closes every connection of user uid — a login name ("id", as
// the directory knows it) or "id@domain" — on this hub and, through the
// Fabric, on every other hub of the cluster, with StatusRemoved and
// ReasonRemoved, and refuses its logins everywhere for
// Options.RemovedRefusal. On each hub the refusal is in place before
// the connections are closed, under the registry's lock: a login of uid
// that attaches at the same moment is either among those closed or
// refused. The other members get the user's leave (Options.LeaveParams)
// through the usual path, LeaveGrace after its last connection closed.
//
// A hub that does not hear the removal (NATS down, or that hub cut off
// from it) keeps uid's connections there until they close by themselves;
// nats.go sends a removal made while NATS is unreachable once it
// reconnects (within its 4 MiB buffer). Remove never blocks on the
// network.
func (h *Hub) Remove(uid string) {
	uid = h.memberID(uid)
	if uid == "" {
		return
	}
	if h.opts.Fabric != nil {
		// Out first, so that the other hubs close theirs while this one
		// closes its own.
		h.opts.Fabric.Remove(uid)
	}
	n := h.removeHere(uid)
	h.log.Info("verto: member removed", "user", uid, "connections", n)
}

// Unremove ends the refusal of user uid's logins that Remove began, on
// this hub and, through the Fabric, on every other: its removal was ended
// early (a manager unremoved it), so its next login is the directory's
// to answer again, not refused for what is left of
// Options.RemovedRefusal. A user not refused is no error. Like Remove,
// it never blocks on the network; a hub that does not hear it (NATS
// down, or a release before it) refuses uid's logins until its refusal
// ends by itself.
func (h *Hub) Unremove(uid string) {
	uid = h.memberID(uid)
	if uid == "" {
		return
	}
	if h.opts.Fabric != nil {
		h.opts.Fabric.Unremove(uid)
	}
	refused := h.reg.unrefuse(uid)
	h.log.Info("verto: member unremoved", "user", uid, "was_refused", refused)
}

// memberID is the registry's key of a login name: id@domain.
func (h *Hub) memberID(id string) string {
	if id == "" || strings.Contains(id, "@") {
		return id
	}
	return id + "@" + h.opts.Domain
}

// removeHere is Remove on this hub only: the refusal, then the
// connections closed, then, when they were uid's last here, its
// disconnect report and its leave. It returns how many connections it
// closed.
func (h *Hub) removeHere(uid string) int {
	now := time.Now()
	n, gone := h.reg.removeUser(uid, now, now.Add(h.opts.RemovedRefusal))
	if f := h.opts.Removed; f != nil {
		id, _, _ := strings.Cut(uid, "@")
		f(id)
	}
	if gone == nil || !h.hold() {
		return n // not here, or shutting down (which closes everything anyway)
	}
	defer h.wg.Done()
	// Unlike a close, whatever the other hubs say of uid: they are removing
	// theirs at the same moment, and each may still count the other's. The
	// leave checks again when it is due, after the grace, by which time
	// the hubs know; two hubs may then both deliver it, which a page takes
	// as one.
	h.disconnectReport(uid, gone.addr)
	h.leaveSoon(uid, gone.homes)
	return n
}

// departed is what is left to do for a user whose last connection here a
// removal closed: its disconnect report (the address of its latest login)
// and its leave (its allowed channels).
type departed struct {
	addr  string
	homes []string
}

// removeUser refuses uid's logins until until, then unregisters every
// connection of uid and closes it with StatusRemoved, all under the lock
// attach takes. It returns how many it closed and, when that was uid's
// last connection here, what is left to do.
func (r *registry) removeUser(uid string, now, until time.Time) (closed int, gone *departed) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused.add(uid, now, until, maxRefused)
	m := r.users[uid]
	if m == nil {
		return 0, nil
	}
	conns := slices.Clone(m.conns)
	for _, c := range conns {
		homes := c.rs.homes
		if last, addr := r.unregisterLocked(c); last {
			gone = &departed{addr: addr, homes: homes}
		}
		// Queueing the close never waits (conn.stop), so it may be done
		// under the lock: no frame handled after this reaches the others.
		c.stopWith(StatusRemoved, ReasonRemoved)
	}
	return len(conns), gone
}

// unrefuse ends the refusal of uid's logins, reporting whether there was
// one.
func (r *registry) unrefuse(uid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused.drop(uid)
}

// removedLately reports whether uid's logins are refused now.
func (r *registry) removedLately(uid string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.refused.has(uid, time.Now)
}

// refusals are the users removed lately: each until when its logins are
// refused. Guarded by the registry's lock. It holds at most a bound of
// users, and only those whose refusal had not ended at the latest
// removal: it is empty (nil) on a site that never removes anyone.
type refusals struct {
	until map[string]time.Time
}

// add refuses uid until until (or longer, if it was already), forgetting
// the refusals that have ended; at limit users, the one ending first is
// forgotten.
func (s *refusals) add(uid string, now, until time.Time, limit int) {
	for k, t := range s.until {
		if !now.Before(t) {
			delete(s.until, k)
		}
	}
	if s.until == nil {
		s.until = make(map[string]time.Time)
	}
	if t, ok := s.until[uid]; ok {
		if until.After(t) {
			s.until[uid] = until
		}
		return
	}
	for len(s.until) >= limit {
		first := ""
		for k, t := range s.until {
			if first == "" || t.Before(s.until[first]) {
				first = k
			}
		}
		delete(s.until, first)
	}
	s.until[uid] = until
}

// drop forgets uid's refusal, reporting whether there was one.
func (s *refusals) drop(uid string) bool {
	_, ok := s.until[uid]
	delete(s.until, uid)
	return ok
}

// has reports whether uid is refused at now(), which it reads only when
// someone is refused at all.
func (s *refusals) has(uid string, now func() time.Time) bool {
	if len(s.until) == 0 {
		return false
	}
	t, ok := s.until[uid]
	return ok && now().Before(t)
}

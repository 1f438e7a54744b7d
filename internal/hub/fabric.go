package hub

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"

	"channels/internal/verto"
)

// Fabric joins the hubs of several processes into one (internal/cluster
// implements it over NATS). Options.Fabric nil — one process — costs the
// hub nothing: every call below sits behind a nil check.
//
// The methods marked "under the registry lock" are called while the hub's
// registry lock is held, in the order the registry changed: they must
// only record the change and return (no I/O, no call back into the hub).
type Fabric interface {
	// Start hands the fabric the hub's receiving side, once, from New.
	Start(Local)

	// Ready returns once what the hub reported so far (connections,
	// subscriptions) is in effect between the hubs: whatever another hub
	// sends after Ready returns reaches them. The hub awaits it before it
	// answers a login or a subscription, so that the answer means every
	// message sent after it is delivered. An error (the fabric cannot
	// reach the others now) does not hold the answer up, and Ready
	// returns when ctx is done, whatever it was waiting for (the hub
	// waits fabricWait at most).
	Ready(ctx context.Context) error
	// Stamp orders a login that attaches now among all logins of the
	// cluster, for takeovers: above every stamp this hub has given or
	// heard of. A wall clock may serve as a floor, but the order never
	// depends on the hosts' clocks agreeing.
	Stamp() int64

	// Broadcast sends a local broadcast's params (a JSON object, stamped
	// with userid and sessid) by sender (id@domain) to the other hubs.
	Broadcast(sender, channel string, params []byte)
	// Relay sends a direct message to the target's connections on the
	// other hubs, whatever this hub knows of them.
	Relay(m Message)
	// Punt asks the other hubs to punt the session (uid, sessid) that a
	// login stamped at (Stamp) has just taken over, if theirs is older.
	Punt(uid, sessid string, at int64)
	// Remove asks every other hub to remove uid (Local.Remove), whatever
	// this hub knows of it: a hub where uid has no connection now refuses
	// its logins all the same. It must not block (a hub that does not hear
	// it keeps uid's connections there).
	Remove(uid string)
	// Unremove asks every other hub to end its refusal of uid's logins
	// (Local.Unremove). It must not block.
	Unremove(uid string)
	// Busy reports whether a connection of uid on another hub said lately
	// that a quarter of its queue is waiting, and the channels such
	// connections are allowed (nil: any): direct messages to it are then
	// refused with "Recipient is busy", as for one here.
	Busy(uid string) (homes []string, busy bool)
	// Linked reports whether a direct message to target (id@domain)
	// relayed now reaches it on the other hubs. While it does not (NATS
	// unreachable, or back but the others not heard again yet, or every
	// hub known to hold target silent lately), a direct message whose
	// target has no connection here that it may reach is refused with
	// -32012 "Recipient unreachable, try again shortly" instead of SENT.
	Linked(target string) bool

	// UserChanged says that uid's local connections, allowed channels or
	// latest login address changed (under the registry lock); UserLeft
	// that its last local connection is gone (under the registry lock).
	UserChanged(m Member)
	UserLeft(uid string)
	// Subscribed and Unsubscribed count local subscriptions to a channel
	// (under the registry lock), so the fabric listens to the channels
	// that have local subscribers and to no other.
	Subscribed(channel string)
	Unsubscribed(channel string)
	// RemoteConns is how many connections uid holds on the other hubs, as
	// far as this one knows (under the registry lock).
	RemoteConns(uid string) int
	// RemoteAddr is the address of uid's latest login on another hub, as
	// far as this one knows ("": none known), for the reports this hub
	// makes of members elsewhere.
	RemoteAddr(uid string) string

	// Admit takes a place for uid in each of its channels, counted over
	// the whole cluster, unless one of them already holds limit users; a
	// user already present anywhere always gets in while the count can be
	// read, and a user present on this hub always. Every Admit that
	// returns Admitted is matched by one Release. Undecided means the
	// count cannot be read now (NATS unreachable): the hub refuses the
	// login, which may be tried again. Unavailable means there is no
	// shared count at all (a NATS without JetStream): the hub then counts
	// its own connections.
	Admit(ctx context.Context, uid string, homes []string, limit int) Admission
	// Release gives back a place Admit took (under the registry lock).
	Release(uid string)
}

// Admission is the answer of Fabric.Admit.
type Admission int

const (
	Admitted Admission = iota
	Full
	Undecided
	Unavailable
)

// Member is what the other hubs know of a user with live connections on
// one hub.
type Member struct {
	UID   string   // id@domain
	Homes []string // allowed event channels; nil: any
	Addr  string   // address of its latest login, for disconnect reports
	Conns int      // live connections on that hub
}

// Level is what is left of a member's budgets on one hub: the tokens in
// its broadcast and direct-message buckets now (below zero: in debt).
type Level struct {
	Broadcast, Message float64
}

// Message is a direct message between hubs, as the relay reads it.
type Message struct {
	Sender    string   // the sender's id@domain (for its budget)
	From      string   // the relay's from: the sender's login name
	FromHomes []string // the sender's allowed channels; nil: any
	Target    string   // id@domain
	Body      string
}

// Local is the receiving side of a hub: what the fabric hands it from the
// other hubs. Its methods may be called from any goroutine; calls for one
// channel (Event) come one at a time, in the order they were sent.
type Local interface {
	// Event delivers another hub's broadcast to the local subscribers.
	Event(sender, channel string, params []byte)
	// Message delivers another hub's direct message to the target's local
	// connections that share a channel with the sender.
	Message(m Message)
	// Busy reports whether a local connection of uid has a quarter of its
	// queue waiting, and the channels those connections are allowed (nil:
	// any).
	Busy(uid string) (homes []string, busy bool)
	// Punt punts the local session (uid, sessid) if older says its login's
	// stamp is older than the takeover's. A session it keeps because it is
	// the newer one is reported with its stamp (held), so that the fabric
	// can tell the other hub to give way.
	Punt(uid, sessid string, older func(at int64) bool) (kept int64, held bool)
	// Remove closes uid's local connections with StatusRemoved and
	// refuses its logins here for Options.RemovedRefusal: another hub
	// removed it (Hub.Remove).
	Remove(uid string)
	// Unremove ends the refusal of uid's logins here: another hub's
	// manager ended its removal early (Hub.Unremove).
	Unremove(uid string)
	// Charge counts a broadcast (or direct message) of n bytes that a
	// member sent through another hub against its budget here, whether or
	// not the member is here now (it may come).
	Charge(uid string, broadcast bool, n int)
	// Level reports uid's budgets here, false when this hub has none or
	// they are full; Adopt lowers them to what another hub had (never
	// raising them). So a member's budgets follow it from hub to hub.
	Level(uid string) (Level, bool)
	Adopt(uid string, l Level)
	// Hold makes uid's broadcasts and direct messages here wait, d at
	// most, until Settle: uid has just arrived here while on other hubs,
	// and the fabric is asking them for their levels.
	Hold(uid string, d time.Duration)
	Settle(uid string)
	// Gone says that a member vanished with its hub (killed, cut off):
	// the local subscribers of its channels get the leave event it could
	// not send, and when report is set this hub reports its disconnect.
	Gone(m Member, report bool)
	// Back undoes Gone for a member whose hub was only silent: unless the
	// member is here now, the local subscribers get again the broadcasts
	// that announced its presence (params by channel, as stamped), and
	// when report is set this hub reports its login again, restoring what
	// the disconnect report cleared.
	Back(m Member, announcements map[string][]byte, report bool)
}

// local is the hub's Local.
type local struct{ h *Hub }

func (l local) Event(sender, channel string, params []byte) {
	h := l.h
	if len(params) < 2 || params[0] != '{' || params[len(params)-1] != '}' {
		return
	}
	// The member spends one budget, whichever hub its sockets are on, and
	// wherever it goes next: charged here whether or not it is here.
	h.budgets.charge(sender, true, len(params), time.Now())
	h.deliverEvent(channel, params[:len(params)-1])
}

func (l local) Message(m Message) {
	l.h.relayLocal(m.From, newPermList(m.FromHomes), m.Target, m.Body)
}

func (l local) Busy(uid string) (homes []string, busy bool) {
	h := l.h
	h.reg.eachUserConn(uid, func(t *conn, hs []string) {
		if !h.backlogged(t) {
			return
		}
		switch {
		case !busy:
			homes = slices.Clone(hs)
		case hs == nil || homes == nil:
			homes = nil // any
		default:
			homes = append(homes, hs...)
		}
		busy = true
	})
	return homes, busy
}

func (l local) Punt(uid, sessid string, older func(at int64) bool) (kept int64, held bool) {
	c, kept, held := l.h.reg.takeSession(uid, sessid, older)
	if c != nil {
		c.enqueue(verto.Request(l.h.nextID(), verto.MethodPunt, nil))
		c.stop(websocket.StatusNormalClosure)
	}
	return kept, held
}

func (l local) Remove(uid string) {
	if n := l.h.removeHere(uid); n > 0 {
		l.h.log.Info("verto: member removed by another process", "user", uid, "connections", n)
	}
}

func (l local) Unremove(uid string) {
	if l.h.reg.unrefuse(uid) {
		l.h.log.Info("verto: member unremoved by another process", "user", uid)
	}
}

func (l local) Charge(uid string, broadcast bool, n int) {
	l.h.budgets.charge(uid, broadcast, n, time.Now())
}

func (l local) Level(uid string) (Level, bool) { return l.h.budgets.level(uid, time.Now()) }

func (l local) Adopt(uid string, lv Level) { l.h.budgets.adopt(uid, lv, time.Now()) }

func (l local) Hold(uid string, d time.Duration) { l.h.budgets.hold(uid, d, time.Now()) }

func (l local) Settle(uid string) { l.h.budgets.settle(uid) }

func (l local) Gone(m Member, report bool) {
	h := l.h
	if !h.hold() {
		return
	}
	defer h.wg.Done()
	if h.reg.isMember(m.UID) {
		return // it is here now: nobody left
	}
	for _, ch := range m.Homes {
		if p, ok := h.leaveParams(m.UID, ch); ok {
			common := p.Marshal()
			h.deliverEvent(ch, common[:len(common)-1])
		}
	}
	if report {
		h.disconnectReport(m.UID, m.Addr)
	}
}

func (l local) Back(m Member, announcements map[string][]byte, report bool) {
	h := l.h
	if !h.hold() {
		return
	}
	defer h.wg.Done()
	if h.reg.isMember(m.UID) {
		return // it is here now, and said so itself
	}
	if h.reg.removedLately(m.UID) {
		// Removed while its hub was cut off, which did not hear it: its
		// leave stands (its connections there close by themselves).
		return
	}
	for ch, params := range announcements {
		if len(params) < 2 || params[0] != '{' || params[len(params)-1] != '}' {
			continue
		}
		h.deliverEvent(ch, params[:len(params)-1])
	}
	if report {
		id, _, _ := strings.Cut(m.UID, "@")
		h.loginReport(id, "", true, m.Addr)
	}
}

// fabricWait bounds how long a reply waits for Fabric.Ready.
const fabricWait = 2 * time.Second

// fabricReady waits until the fabric has put into effect what this hub
// reported so far (Fabric.Ready), fabricWait at most. A fabric that
// cannot (NATS unreachable) or does not answer in time does not hold the
// reply up longer: each hub then serves its own. (The fabric counts and
// logs a deadline that passed.)
func (h *Hub) fabricReady(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, fabricWait)
	defer cancel()
	if err := h.opts.Fabric.Ready(ctx); err != nil {
		h.log.Debug("verto: cluster not ready before a reply", "err", err)
	}
}

// newPermList turns a list of allowed channels back into a permSet (nil:
// any).
func newPermList(homes []string) permSet {
	if homes == nil {
		return nil
	}
	s := make(permSet, len(homes))
	for _, ch := range homes {
		s[strings.ToLower(ch)] = struct{}{}
	}
	return s
}

// homesList lists a permSet (nil: any).
func homesList(s permSet) []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s))
	for ch := range s {
		out = append(out, ch)
	}
	return out
}

// member is what the fabric is told of uid; under the registry lock.
func (r *registry) memberOf(uid string, m *member, homes []string) Member {
	return Member{UID: uid, Homes: homes, Addr: m.loginAddr, Conns: len(m.conns)}
}

// isMember reports whether uid has a live connection here.
func (r *registry) isMember(uid string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.users[uid] != nil
}

// takeSession unregisters the connection holding the session (uid,
// sessid) if older says its login's stamp is older than a takeover's, and
// returns it for punting. A connection it leaves because it is newer is
// reported with its stamp (held).
func (r *registry) takeSession(uid, sessid string, older func(at int64) bool) (c *conn, kept int64, held bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c = r.sessions[sessionKey{uid, sessid}]
	if c == nil {
		return nil, 0, false
	}
	if !older(c.rs.at) {
		return nil, c.rs.at, true
	}
	r.unregisterLocked(c)
	return c, 0, false
}

// presentElsewhere reports whether uid has connections on another hub.
func (h *Hub) presentElsewhere(uid string) bool {
	return h.reg.fab != nil && h.reg.fab.RemoteConns(uid) > 0
}

// admit takes l's places in its channels over the whole cluster, when the
// hub counts clients per channel and a fabric can count them. It returns
// the limit the registry must still apply itself (0 when the fabric
// admitted l), or why the login is refused before anything is
// registered (channelFull, limitUnknown; attached: not refused).
func (h *Hub) admit(ctx context.Context, l *login) (maxUsers int, refused attachResult) {
	maxUsers = h.opts.MaxClientsPerChannel
	if h.opts.Fabric == nil {
		return maxUsers, attached
	}
	l.at = h.opts.Fabric.Stamp()
	if maxUsers <= 0 || l.homes == nil {
		return maxUsers, attached
	}
	switch h.opts.Fabric.Admit(ctx, l.uid, l.homes, maxUsers) {
	case Admitted:
		l.placed = true
		return 0, attached
	case Full:
		return 0, channelFull
	case Undecided:
		return 0, limitUnknown
	}
	return maxUsers, attached // Unavailable: this hub's own count
}

// unreachable reports whether a direct message from a sender allowed
// fromHomes to target cannot be delivered now: the fabric cannot reach
// target on the other hubs (Fabric.Linked), and no connection of target
// here shares a channel with the sender. With one here it is delivered
// here (and its connections elsewhere, if any, miss it); with the other
// hubs linked it is relayed whatever this hub knows.
func (h *Hub) unreachable(fromHomes permSet, target string) bool {
	if h.opts.Fabric == nil || h.opts.Fabric.Linked(target) {
		return false
	}
	here := false
	h.reg.eachUserConn(target, func(_ *conn, homes []string) {
		here = here || sharesChannel(fromHomes, homes)
	})
	return !here
}

// relayRemote hands a direct message to the other hubs.
func (h *Hub) relayRemote(from string, fromHomes permSet, target, body string) {
	h.opts.Fabric.Relay(Message{
		Sender:    from + "@" + h.opts.Domain,
		From:      from,
		FromHomes: homesList(fromHomes),
		Target:    target,
		Body:      body,
	})
}

// charge takes what a member spent through another hub from its bucket
// here, going into debt if need be, so that its sockets on all hubs share
// one budget.
func (b *budgets) charge(uid string, broadcast bool, n int, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k, s := b.which(b.memberLocked(uid, now), broadcast)
	k.charge(s, cost(n), now)
}

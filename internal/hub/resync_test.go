package hub

import (
	"bytes"
	"context"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"channels/internal/fixtures"
	"channels/internal/store/storetest"
)

// heldGateway passes reports to inner (nil: answers every one) once its
// gate is open; while it is held, each waits at the gate. It counts the
// reports that reached it and those it finished, by login.
type heldGateway struct {
	inner    Gateway
	mu       sync.Mutex
	gate     chan struct{} // nil: open
	arrived  atomic.Int64
	finished atomic.Int64
	logins   map[string]int // finished reports by login field
}

func newHeldGateway(inner Gateway) *heldGateway {
	return &heldGateway{inner: inner, logins: map[string]int{}}
}

func (g *heldGateway) hold() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *heldGateway) free() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *heldGateway) Respond(ctx context.Context, f url.Values) []byte {
	b, _ := g.RespondErr(ctx, f)
	return b
}

func (g *heldGateway) RespondErr(ctx context.Context, f url.Values) ([]byte, error) {
	g.arrived.Add(1)
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out, err := []byte(notFoundDoc), error(nil)
	if g.inner != nil {
		out, err = g.inner.(failingGateway).RespondErr(ctx, f)
	}
	g.mu.Lock()
	g.logins[f.Get("login")]++
	g.mu.Unlock()
	g.finished.Add(1)
	return out, err
}

// RespondBatch takes the reports one by one, as a gateway without a
// database transaction would.
func (g *heldGateway) RespondBatch(ctx context.Context, forms []url.Values) []error {
	errs := make([]error, len(forms))
	for i, f := range forms {
		_, errs[i] = g.RespondErr(ctx, f)
	}
	return errs
}

func (g *heldGateway) reported(login string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logins[login]
}

// goroutines returns the stacks of the goroutines that run every one of
// the functions named (as in a stack trace: "hub.(*Hub).resync(").
func goroutines(funcs ...string) []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
next:
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		for _, f := range funcs {
			if !bytes.Contains(g, []byte(f)) {
				continue next
			}
		}
		out = append(out, string(g))
	}
	return out
}

// waiting reports whether every stack given is waiting in a select (or a
// channel send), and there is at least one.
func waiting(stacks []string) bool {
	for _, s := range stacks {
		head, _, _ := strings.Cut(s, "\n")
		if !strings.Contains(head, "[select") && !strings.Contains(head, "[chan send") {
			return false
		}
	}
	return len(stacks) > 0
}

// resyncIdle reports whether the resync loop took its last kick and
// waits: for the next one, or (before the fix) in a post to a full queue.
func resyncIdle(h *Hub) bool {
	return len(h.outage.kick) == 0 && waiting(goroutines("hub.(*Hub).resync("))
}

// markDirty makes users dirty as failed reports would, all at once, and
// wakes the resync loop once.
func markDirty(h *Hub, users map[string][]string) {
	h.outage.mu.Lock()
	for id, addrs := range users {
		h.outage.dirty[id] = addrs
	}
	h.outage.mu.Unlock()
	h.outage.wake()
}

// TestResyncRacingDisconnect: a client whose reports failed disconnects
// while the resync of its state waits for room in a full report queue.
// Its disconnect is the last word: the store never ends with it marked
// connected. (The resync used to read the state before queueing, and
// queue a login report the disconnect's then could not follow.)
func TestResyncRacingDisconnect(t *testing.T) {
	for _, be := range storetest.Stores(t) {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			_, cl := storetest.ChannelWithClient(t, be.Store)
			gw := newHeldGateway(directoryGateway(t, be.Store))
			th := startHub(t, gw, func(o *Options) { o.ReportWorkers = 1 })
			h := th.h

			c := dial(t, th, "x", nil)
			c.login(cl.ID, cl.Password, "s")
			waitWithin(t, "the login report", time.Minute, func() bool { return gw.reported(cl.ID) == 1 })

			// One report at the held gateway, a full queue behind it.
			gw.hold()
			h.disconnectReport("zz@"+fixtures.Domain, "192.0.2.1:1")
			waitWithin(t, "the first held report", time.Minute, func() bool { return gw.arrived.Load() == gw.finished.Load()+1 })
			for range reportQueue {
				h.disconnectReport("zz@"+fixtures.Domain, "192.0.2.1:1")
			}
			// The client's older connection's report failed: resync it.
			markDirty(h, map[string][]string{cl.ID: {"192.0.2.9:9"}})
			waitWithin(t, "the resync pass", time.Minute, func() bool { return resyncIdle(h) })

			// Now it disconnects; its report waits for room.
			_ = c.ws.CloseNow()
			waitWithin(t, "the disconnect report's post", time.Minute, func() bool {
				_, live := h.reg.loginAddrOf(cl.ID + "@" + fixtures.Domain)
				return !live && waiting(goroutines("hub.(*Hub).disconnectReport(", "hub.(*conn)"))
			})
			gw.free()
			waitWithin(t, "the resync of the client", time.Minute, func() bool { return h.outage.pending() == 0 && resyncIdle(h) })
			// A marker behind everything queued (one worker: in order).
			h.disconnectReport("marker@"+fixtures.Domain, "192.0.2.1:1")
			waitWithin(t, "the marker report", time.Minute, func() bool { return gw.reported("marker@"+fixtures.Domain) == 1 })

			got, err := be.Store.ClientByID(ctx, cl.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Connected.IsZero() {
				t.Errorf("client marked connected after its disconnect (reports: %d of it, %d in all)",
					gw.reported(cl.ID)+gw.reported(cl.ID+"@"+fixtures.Domain), gw.finished.Load())
			}
		})
	}
}

// TestResyncPacedBehindLogins: after an outage, re-reporting 5,000 users
// does not fill the report queue: a new login's report is queued at once
// even while the gateway takes nothing, and every dirty user is reported
// once it does.
func TestResyncPacedBehindLogins(t *testing.T) {
	const users = 5000
	gw := newHeldGateway(nil)
	h := New(Options{Gateway: gw, Domain: fixtures.Domain, ReportWorkers: 1})
	serveHub(t, h, nil)
	gw.hold()
	dirty := make(map[string][]string, users)
	for i := range users {
		dirty["d"+strconv.Itoa(i)] = []string{"192.0.2.1:1"}
	}
	markDirty(h, dirty)
	waitWithin(t, "the resync pass", time.Minute, func() bool { return h.outage.pending() < users && resyncIdle(h) })

	posted := make(chan struct{})
	go func() {
		h.loginReport("newcomer", "s", true, "192.0.2.2:1")
		close(posted)
	}()
	select {
	case <-posted:
	case <-time.After(10 * time.Second):
		t.Fatalf("a login's report still waits, 10 s on, behind the resync (%d queued)", len(h.reports.queues[0]))
	}
	gw.free()
	waitWithin(t, "every dirty user reported", time.Minute, func() bool {
		for i := range users {
			if gw.reported("d"+strconv.Itoa(i)+"@"+fixtures.Domain) == 0 {
				return false
			}
		}
		return gw.reported("newcomer") == 1
	})
	if n := h.outage.pending(); n != 0 {
		t.Errorf("%d users still dirty", n)
	}
}

// TestResyncOfMemberElsewhere: a dirty user this hub holds no connection
// of but another hub does (a report of its own connection here, or of its
// arrival there, failed) is reported logged in with the address it has
// there, never disconnected: that would clear the address it is connected
// with there, and a failed arrival would stay unreported. One held
// nowhere is reported disconnected.
func TestResyncOfMemberElsewhere(t *testing.T) {
	fab := newFakeFabric()
	th := startHub(t, newDirGateway(), func(o *Options) { o.Fabric = fab })
	const id = "a"
	uid := id + "@" + fixtures.Domain
	item := reportItem{resync: id, addrs: []string{"192.0.2.1:1"}}
	if forms := th.h.itemForms(nil, item); len(forms) != 1 || forms[0].Get("action") != "verto_client_disconnect" {
		t.Fatalf("held nowhere: %v, want one disconnect", forms)
	}
	fab.mu.Lock()
	fab.remote[uid] = 1
	fab.remoteAddr[uid] = "192.0.2.2:2"
	fab.mu.Unlock()
	forms := th.h.itemForms(nil, item)
	if len(forms) != 1 || forms[0].Get("action") != "verto_client_login" || forms[0].Get("address") != "192.0.2.2:2" {
		t.Errorf("held on another hub: %v, want one login with the address it has there", forms)
	}
}

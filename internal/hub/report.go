package hub

import (
	"context"
	"hash/maphash"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// reporter posts login and disconnect reports off the connections' loops,
// as FreeSWITCH's Lua hooks do: a login never waits for the database write
// its report causes. Reports about one client keep their order (a client's
// reports always go to the same worker); a full queue makes the poster
// wait rather than drop or reorder a report. A worker that finds several
// reports queued sends up to maxBatch of them at once, which a gateway
// that can (batchGateway: fsapi.Registry with a Batcher) applies in one
// database transaction: on PostgreSQL one commit, one WAL flush, instead
// of one per report.
type reporter struct {
	h      *Hub
	seed   maphash.Seed
	queues []chan reportItem
	// resyncs counts, per worker, the resync items queued and not yet
	// sent: resync queues at most resyncRoom per worker (outage.go).
	resyncs []atomic.Int64
	wg      sync.WaitGroup
	// ctx is the reports' own: never cancelled while the hub runs (a
	// report outlives its connection), cancelled by close when the
	// shutdown's time is up, so that a gateway that hangs cannot hold
	// the shutdown past it.
	ctx     context.Context
	abandon context.CancelFunc
	dropped atomic.Int64 // reports abandoned at shutdown
	// sent, set by benchmarks only (while the workers run), receives each
	// batch once sent.
	sent atomic.Pointer[func(forms []url.Values)]
}

// reportItem is a queued report, or a resync: the user whose reports
// failed, whose state the worker reads when it comes to it (outage.go).
type reportItem struct {
	form   url.Values // nil: a resync
	resync string     // the user's id (without the domain)
	addrs  []string   // the addresses whose reports failed
}

const (
	// reportQueue is each worker's queue.
	reportQueue = 1024
	// maxBatch bounds the reports a worker sends at once (as
	// fsapi.MaxBatch does): one batch never holds its database connection
	// for long.
	maxBatch = 64
)

// batchGateway is a Gateway that takes several reports at once, as
// (*fsapi.Registry).RespondBatch does: errs[i] says report i failed.
type batchGateway interface {
	RespondBatch(ctx context.Context, forms []url.Values) (errs []error)
}

// ReportWorkersFor is the Options.ReportWorkers for a gateway whose
// store has a pool of pool connections: half of it (at least one), so
// that a burst of logins, whose reports each hold a connection until
// their commit, leaves the other half to the pages and the logins'
// lookups. PostgreSQL's default pool of 16 gives 8; SQLite's pool of 8
// gives 4, the count before it was an option. pool <= 0 (unknown) gives
// DefaultReportWorkers.
func ReportWorkersFor(pool int) int {
	if pool <= 0 {
		return DefaultReportWorkers
	}
	return max(pool/2, 1)
}

// newReporter starts h.opts.ReportWorkers workers. The count is fixed for
// the hub's life, so a client's reports always hash to the same worker.
func newReporter(h *Hub) *reporter {
	r := &reporter{h: h, seed: maphash.MakeSeed(), resyncs: make([]atomic.Int64, h.opts.ReportWorkers)}
	r.ctx, r.abandon = context.WithCancel(context.Background())
	for w := range h.opts.ReportWorkers {
		q := make(chan reportItem, reportQueue)
		r.queues = append(r.queues, q)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.work(w, q)
		}()
	}
	return r
}

// work is worker w: it sends what its queue holds, as many reports at a
// time as are queued (at most maxBatch), until the queue is closed.
func (r *reporter) work(w int, q chan reportItem) {
	var forms []url.Values
	for it := range q {
		if r.ctx.Err() != nil {
			r.dropped.Add(1)
			r.took(w, it)
			continue
		}
		forms = r.h.itemForms(forms[:0], it)
		r.took(w, it)
	more:
		// Another item makes at most maxDirtyAddrs+1 reports (a resync).
		for len(forms)+maxDirtyAddrs+1 <= maxBatch {
			select {
			case it, ok := <-q:
				if !ok {
					break more
				}
				if r.ctx.Err() != nil {
					r.dropped.Add(1)
				} else {
					forms = r.h.itemForms(forms, it)
				}
				r.took(w, it)
			default:
				break more
			}
		}
		if len(forms) > 0 {
			r.send(forms)
			if sent := r.sent.Load(); sent != nil {
				(*sent)(forms)
			}
		}
		clear(forms) // the forms are the gateway's no more
	}
}

// took notes that worker w has taken item it: the last of its resyncs
// wakes the resync loop to queue more.
func (r *reporter) took(w int, it reportItem) {
	if it.form == nil && r.resyncs[w].Add(-1) == 0 {
		r.h.outage.wake()
	}
}

// worker returns the worker of the client id.
func (r *reporter) worker(id string) int {
	return int(maphash.String(r.seed, id) % uint64(len(r.queues)))
}

// post queues a report about client id. A full queue makes it wait,
// unless the hub is past shutting its connections down (its root context
// ended) or the reports were abandoned: the report is then dropped.
func (r *reporter) post(id string, form url.Values) {
	select {
	case r.queues[r.worker(id)] <- reportItem{form: form}:
	case <-r.h.root.Done():
		r.dropped.Add(1)
	case <-r.ctx.Done():
		r.dropped.Add(1)
	}
}

// tryResync queues a resync of user id (addrs: the addresses whose
// reports failed) if its worker has fewer than resyncRoom resyncs queued
// and room in its queue; it never waits, so a connection's loop never
// waits behind a resync. false: not queued, try on a later pass.
func (r *reporter) tryResync(id string, addrs []string) bool {
	w := r.worker(id)
	if r.resyncs[w].Load() >= resyncRoom {
		return false
	}
	r.resyncs[w].Add(1)
	select {
	case r.queues[w] <- reportItem{resync: id, addrs: addrs}:
		return true
	default:
		r.resyncs[w].Add(-1)
		return false
	}
}

// room is how many resyncs the workers would take now.
func (r *reporter) room() int {
	n := 0
	for w := range r.resyncs {
		n += max(resyncRoom-int(r.resyncs[w].Load()), 0)
	}
	return n
}

// close lets the workers finish the queued reports and waits for them,
// until ctx ends: then the report under way is cancelled and those still
// queued are dropped. It returns how many reports were dropped. No post
// may follow.
func (r *reporter) close(ctx context.Context) int64 {
	for _, q := range r.queues {
		close(q)
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.abandon()
		<-done
	}
	r.abandon()
	return r.dropped.Load()
}

// itemForms appends the reports item it makes to forms: its report, or,
// for a resync, the reports of the user's state as it is now — read here,
// just before they are sent, so that they cannot overtake the report of a
// later change (which is queued behind them, on this worker).
func (h *Hub) itemForms(forms []url.Values, it reportItem) []url.Values {
	if it.form != nil {
		return append(forms, it.form)
	}
	uid := it.resync + "@" + h.opts.Domain
	addr, live := h.reg.loginAddrOf(uid)
	if !live && h.presentElsewhere(uid) {
		// Connected on another hub (whose arrival this hub may have
		// reported, Back): a disconnect would clear the address it is
		// connected with there. Its state is that connection's: a login
		// with that address, which the other hub's disconnect will
		// match when it ends.
		if a := h.reg.fab.RemoteAddr(uid); a != "" {
			forms = append(forms, h.loginForm(it.resync, "", true, a))
		}
		return forms
	}
	for _, a := range it.addrs {
		if !live || a != addr {
			forms = append(forms, h.disconnectForm(uid, a))
		}
	}
	if live {
		forms = append(forms, h.loginForm(it.resync, "", true, addr))
	}
	return forms
}

// send sends forms, in order: in one call when the gateway takes batches,
// and notes how each was taken. Those the abandonment of the reports
// (shutdown's time up) cut short are dropped and counted.
func (r *reporter) send(forms []url.Values) {
	h := r.h
	g, ok := h.opts.Gateway.(batchGateway)
	if !ok || len(forms) == 1 {
		for i, f := range forms {
			if r.ctx.Err() != nil {
				r.dropped.Add(int64(len(forms) - i))
				return
			}
			h.report(r.ctx, f)
		}
		return
	}
	// In client order (each client's own reports keep theirs): two
	// batches, or a batch and another writer of several clients' rows,
	// then lock those rows in one order and cannot deadlock each other.
	slices.SortStableFunc(forms, func(a, b url.Values) int {
		return strings.Compare(reportClient(a), reportClient(b))
	})
	ctx, cancel := context.WithTimeout(r.ctx, h.opts.GatewayTimeout)
	defer cancel()
	errs := g.RespondBatch(ctx, forms)
	if r.ctx.Err() != nil {
		r.dropped.Add(int64(len(forms)))
		return
	}
	for i, f := range forms {
		h.reported(f, errs[i])
	}
}

// reportClient is the client a report is about: its login without the
// domain.
func reportClient(f url.Values) string {
	id, _, _ := strings.Cut(f.Get("login"), "@")
	return id
}

// report posts a form to the gateway; the answer is ignored, as the Lua
// hooks ignore it, but a failure (the gateway's database down) is
// remembered and the user's state reported again once the gateway answers
// (outage.go).
func (h *Hub) report(ctx context.Context, form url.Values) {
	ctx, cancel := context.WithTimeout(ctx, h.opts.GatewayTimeout)
	defer cancel()
	_, err := h.respond(ctx, form)
	h.reported(form, err)
}

// loginReport reports a login attempt with the fields the login hook posts.
func (h *Hub) loginReport(login, sessid string, success bool, addr string) {
	h.reports.post(login, h.loginForm(login, sessid, success, addr))
}

// loginForm is the report of a login attempt.
func (h *Hub) loginForm(login, sessid string, success bool, addr string) url.Values {
	s := "0"
	if success {
		s = "1"
	}
	return url.Values{
		"action":   {"verto_client_login"},
		"login":    {login},
		"sessid":   {sessid},
		"success":  {s},
		"address":  {addr},
		"hostname": {h.opts.Hostname},
	}
}

// disconnectReport reports a closed connection of uid (id@domain) with the
// fields the disconnect hook posts.
func (h *Hub) disconnectReport(uid, addr string) {
	id, _, _ := strings.Cut(uid, "@")
	h.reports.post(id, h.disconnectForm(uid, addr))
}

// disconnectForm is the report of a closed connection of uid.
func (h *Hub) disconnectForm(uid, addr string) url.Values {
	return url.Values{
		"action":   {"verto_client_disconnect"},
		"login":    {uid},
		"sessid":   {""},
		"success":  {""},
		"address":  {addr},
		"hostname": {h.opts.Hostname},
	}
}

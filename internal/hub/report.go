package hub

import (
	"context"
	"hash/maphash"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// reporter posts login and disconnect reports off the connections' loops,
// as FreeSWITCH's Lua hooks do: a login never waits for the database write
// its report causes. Reports about one client keep their order (a client's
// reports always go to the same worker); a full queue makes the poster
// wait rather than drop or reorder a report.
type reporter struct {
	h      *Hub
	seed   maphash.Seed
	queues []chan url.Values
	wg     sync.WaitGroup
	// ctx is the reports' own: never cancelled while the hub runs (a
	// report outlives its connection), cancelled by close when the
	// shutdown's time is up, so that a gateway that hangs cannot hold
	// the shutdown past it.
	ctx     context.Context
	abandon context.CancelFunc
	dropped atomic.Int64 // reports abandoned at shutdown
}

// reportQueue is each worker's queue.
const reportQueue = 1024

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
	r := &reporter{h: h, seed: maphash.MakeSeed()}
	r.ctx, r.abandon = context.WithCancel(context.Background())
	for range h.opts.ReportWorkers {
		q := make(chan url.Values, reportQueue)
		r.queues = append(r.queues, q)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for form := range q {
				if r.ctx.Err() != nil {
					r.dropped.Add(1)
					continue
				}
				r.h.report(r.ctx, form)
			}
		}()
	}
	return r
}

// post queues a report about client id. A full queue makes it wait,
// unless the hub is past shutting its connections down (its root context
// ended) or the reports were abandoned: the report is then dropped.
func (r *reporter) post(id string, form url.Values) {
	select {
	case r.queues[maphash.String(r.seed, id)%uint64(len(r.queues))] <- form:
	case <-r.h.root.Done():
		r.dropped.Add(1)
	case <-r.ctx.Done():
		r.dropped.Add(1)
	}
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
	s := "0"
	if success {
		s = "1"
	}
	h.reports.post(login, url.Values{
		"action":   {"verto_client_login"},
		"login":    {login},
		"sessid":   {sessid},
		"success":  {s},
		"address":  {addr},
		"hostname": {h.opts.Hostname},
	})
}

// disconnectReport reports a closed connection of uid (id@domain) with the
// fields the disconnect hook posts.
func (h *Hub) disconnectReport(uid, addr string) {
	id, _, _ := strings.Cut(uid, "@")
	h.reports.post(id, url.Values{
		"action":   {"verto_client_disconnect"},
		"login":    {uid},
		"sessid":   {""},
		"success":  {""},
		"address":  {addr},
		"hostname": {h.opts.Hostname},
	})
}

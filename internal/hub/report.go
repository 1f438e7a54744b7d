package hub

import (
	"context"
	"hash/maphash"
	"net/url"
	"strings"
	"sync"
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
	for range h.opts.ReportWorkers {
		q := make(chan url.Values, reportQueue)
		r.queues = append(r.queues, q)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for form := range q {
				r.h.report(r.h.root, form)
			}
		}()
	}
	return r
}

// post queues a report about client id.
func (r *reporter) post(id string, form url.Values) {
	r.queues[maphash.String(r.seed, id)%uint64(len(r.queues))] <- form
}

// close lets the workers finish the queued reports and waits for them. No
// post may follow.
func (r *reporter) close() {
	for _, q := range r.queues {
		close(q)
	}
	r.wg.Wait()
}

// report posts a form to the gateway; the answer is ignored, as the Lua
// hooks ignore it, but a failure (the gateway's database down) is
// remembered and the user's state reported again once the gateway answers
// (outage.go).
func (h *Hub) report(ctx context.Context, form url.Values) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.GatewayTimeout)
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

// Package hub is the embedded Verto signalling server served at /verto: a
// WebSocket JSON-RPC hub that behaves on the wire like FreeSWITCH mod_verto
// together with the Channels Lua scripts (message relay, login and
// disconnect reports), for everything the browser client uses.
//
// Shape: every connection is a small actor — a reader goroutine, a writer
// goroutine with a bounded queue, and one loop (the HTTP handler goroutine)
// that owns all of the connection's state. Connections meet in a registry
// (sessions by sessid, connections by user, subscriptions by event channel)
// guarded by its own lock. Users authenticate through a Gateway — in
// production the /fsapi handler registry, called in-process with exactly the
// form mod_xml_curl would POST — and the XML it returns is read the way
// FreeSWITCH reads it. There is no package-level state: every counter,
// including the server request id shared by all connections, belongs to a
// Hub value.
//
// docs/HUB.md lists the deliberate differences from mod_verto.
package hub

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"channels/internal/forwarded"
	"channels/internal/metrics"
)

// Gateway answers directory lookups and takes login and disconnect reports:
// the in-process form of /fsapi. (*fsapi.Registry).Respond satisfies it.
// Respond receives the key/value pairs FreeSWITCH would POST and returns the
// XML document (or, for reports, any body) /fsapi would answer.
type Gateway interface {
	Respond(ctx context.Context, form url.Values) []byte
}

// Options configure a Hub. Zero values take the defaults named on each
// field.
type Options struct {
	// Gateway authenticates users and receives reports. Required.
	Gateway Gateway
	// Domain is the Verto domain (mod_verto's force-register-domain): the
	// part after @ in user ids. Required.
	Domain string
	// Hostname is sent as "hostname" (and FreeSWITCH-Hostname) with every
	// gateway request, where FreeSWITCH sends its host name. Default
	// "channels".
	Hostname string
	// AllowedOrigins lists the origins allowed to open a WebSocket, as
	// "https://host[:port]" or as a bare host pattern ("host", "*.example.com").
	// Requests without an Origin header (non-browser clients) are allowed.
	// Default: only the request's own host.
	AllowedOrigins []string
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger

	// MaxFrameBytes is the largest frame read. Default 256 KiB.
	MaxFrameBytes int64
	// RequestRate and RequestBurst bound the JSON-RPC requests (batch items
	// count one each) a connection may send: RequestRate per second on
	// average, RequestBurst at once. A connection over the limit is closed
	// with status 1008. Default 50/s, burst 200.
	RequestRate  float64
	RequestBurst int
	// AddressBytes bounds the bytes of frames the connections from one
	// address (an IPv6 /64) may send together, whether or not they log
	// in: Rate per second (in started 4 KiB units), Burst at once; a
	// connection whose frame does not fit is closed with status 1008, and
	// reconnecting does not refill it. Parsing is the cost it bounds (16
	// sockets sending 48 frames of 250 KiB a second took 163 % of a core).
	// Default 1 MiB/s, burst 4 MiB (at least MaxFrameBytes).
	AddressBytes Budget
	// MaxBatch bounds the requests in one JSON-RPC batch; a larger batch
	// is answered with one error and none of it runs. Default 16 (the
	// browser client never batches).
	MaxBatch int
	// BroadcastBudget bounds the local broadcasts one member (a login,
	// over all of its connections) may send; MessageBudget its direct
	// messages. Each costs one token per started 4 KiB. Over budget the
	// request gets an error (CodeRateLimited) and is not delivered.
	// Defaults: 2/s with a burst of 20, and 25/s with a burst of 100.
	BroadcastBudget Budget
	MessageBudget   Budget
	// MaxEventBytes bounds the params of one broadcast, MaxMessageBytes
	// the body of one direct message. Defaults 16 KiB and 64 KiB.
	MaxEventBytes   int
	MaxMessageBytes int
	// MaxConnsPerClient bounds the connections logged in as one user at a
	// time. Default 16.
	MaxConnsPerClient int
	// MaxSubscriptions bounds the event channels one connection may
	// subscribe to (a user allowed "a" may subscribe to any "a.b"); more
	// are refused as unauthorized. Default 16.
	MaxSubscriptions int
	// MaxClientsPerChannel, when positive, bounds the users with a live
	// connection in each event channel they are allowed (Channels allows
	// each client exactly its channel). It is checked and taken under one
	// lock with the login, so it holds exactly under races. Default 0: no
	// limit.
	MaxClientsPerChannel int
	// MaxConnsPerAddress bounds the open WebSockets from one IP address.
	// Default 256.
	MaxConnsPerAddress int
	// WriteTimeout bounds one frame write. Default 10 s.
	WriteTimeout time.Duration
	// QueueSize and QueueBytes bound the frames, and their bytes, waiting
	// to be written to one connection; a connection whose queue passes
	// either with its own replies is dropped, and frames others caused
	// may fill only half of it (past that they are not delivered). They
	// only guard memory: the budgets above keep what any one member can
	// queue far below them, and a reader that stops reading is found by
	// WriteTimeout. Bytes are what the frames write; an event or a
	// relayed message queued for many connections is held once, shared
	// (see MaxQueuedBytes). Defaults 4096 and 4 MiB.
	QueueSize  int
	QueueBytes int
	// MaxQueuedBytes bounds the memory that frames others caused (events,
	// relayed messages) hold in all connections' queues together: each
	// such frame once, however many queues hold it, plus 64 bytes per
	// queue entry. Past it, one is queued only for a connection with no
	// other one waiting: readers that keep up still get everything, and
	// those that are behind (subscribers that never read) miss what comes
	// until they catch up or are cut by WriteTimeout. A connection's own
	// replies are not counted: each answers a request its address paid
	// for in AddressBytes, and QueueBytes bounds them. Default 64 MiB.
	MaxQueuedBytes int
	// SendBuffer is each WebSocket's kernel send buffer (SO_SNDBUF; Linux
	// keeps twice it). Left to the kernel, the buffer of a socket whose
	// reader stops reading grows to 4 MiB (tcp_wmem), which a thousand
	// such sockets turn into gigabytes outside the process's memory. A
	// signalling frame is small: 64 KiB is ample, even far away. Default
	// 64 KiB; negative: the kernel's own.
	SendBuffer int
	// PingInterval and PongTimeout find connections whose network died
	// silently (a laptop lid closed, a Wi-Fi gone: no FIN ever comes): a
	// connection that sent nothing for PingInterval gets a WebSocket ping
	// and is closed when no pong comes within PongTimeout, so its member
	// leaves the others' lists (see LeaveGrace). Browsers answer pings
	// themselves, even in a background tab. Defaults 10 s and 5 s.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// IdleTimeout closes a connection that sent nothing for this long. The
	// browser client's keepalive echo (about every 45 s) keeps it open.
	// Default 2 min.
	IdleTimeout time.Duration
	// GatewayTimeout bounds one gateway call. Default 10 s.
	GatewayTimeout time.Duration
	// ReportWorkers is how many goroutines post the login and disconnect
	// reports (report.go); each waits for the gateway's answer, which for
	// the Channels gateway is a database commit, so on PostgreSQL they
	// bound the logins a second (4 workers: 0.55–0.59× the fair floor of
	// scripts/bench-hub). Each holds at most one of the store's
	// connections: ReportWorkersFor gives a count that leaves half of the
	// pool to the pages. One client's reports stay in order whatever the
	// count (they all go to one worker). Default DefaultReportWorkers.
	ReportWorkers int
	// LoginWait is how long a login waits for a gateway that fails (its
	// database unreachable or restarting) to answer again before it is
	// answered CodeUnavailable; the browser's login request times out
	// after 10 s. Default 8 s; negative: no wait (see outage.go).
	LoginWait time.Duration
	// LoginTimeout closes a connection that has not logged in this long
	// after it opened, so sockets that never authenticate cannot be kept
	// open with keepalives. Default 30 s.
	LoginTimeout time.Duration
	// Metrics counts connections, logins, requests and refusals. Nil: not
	// counted.
	Metrics *metrics.Hub

	// Fabric, when set, joins this hub with the hubs of other processes
	// (internal/cluster); nil: one process. See fabric.go.
	Fabric Fabric
	// LeaveParams gives the params of the broadcast a member of channel
	// would send when leaving it; the hub delivers it, stamped with the
	// member's userid, when the member vanished with another process.
	// Nil: nothing is delivered.
	LeaveParams func(channel string) []byte
	// LeaveGrace is how long after a member's last connection closed the
	// hub delivers LeaveParams for it on its channels, unless it is back
	// by then (a reload, a reconnect). Default 1 s.
	LeaveGrace time.Duration
	// RemovedRefusal is how long after Remove every hub of the cluster
	// refuses logins of the removed user, whatever the Gateway answers:
	// long enough to cover a directory whose answers lag the removal (the
	// Channels directory refuses removed clients itself within about a
	// second). Default 2 min.
	RemovedRefusal time.Duration
	// Removed, when set, is told the login name ("id", without the
	// domain) of every removal this hub hears, its own and the other
	// hubs', so that what the process caches of the member's channel is
	// read afresh (a reload on this process must not outrun the removal).
	// It runs on the hub's own goroutines and should return quickly.
	Removed func(id string)
}

// Defaults for Options.
const (
	DefaultMaxFrameBytes      = 256 << 10
	DefaultRequestRate        = 50
	DefaultRequestBurst       = 200
	DefaultAddressByteRate    = 256     // 4 KiB units: 1 MiB/s
	DefaultAddressByteBurst   = 1 << 10 // 4 MiB
	DefaultMaxBatch           = 16
	DefaultMaxEventBytes      = 16 << 10
	DefaultMaxMessageBytes    = 64 << 10
	DefaultMaxConnsPerClient  = 16
	DefaultMaxSubscriptions   = 16
	DefaultMaxConnsPerAddress = 256
	DefaultWriteTimeout       = 10 * time.Second
	DefaultQueueSize          = 4096
	DefaultQueueBytes         = 4 << 20
	DefaultSendBuffer         = 64 << 10
	DefaultMaxQueuedBytes     = 64 << 20
	DefaultIdleTimeout        = 2 * time.Minute
	DefaultPingInterval       = 10 * time.Second
	DefaultPongTimeout        = 5 * time.Second
	DefaultGatewayTimeout     = 10 * time.Second
	DefaultReportWorkers      = 4
	DefaultLoginTimeout       = 30 * time.Second
	DefaultLoginWait          = 8 * time.Second
	DefaultLeaveGrace         = time.Second
	DefaultRemovedRefusal     = 2 * time.Minute
	DefaultHostname           = "channels"
)

// Default budgets: a member's presence needs a broadcast when it joins
// (its hello), every 30 s, when it renames itself and when it leaves, and
// one direct message per newcomer's hello (at most one a second to each);
// a call's set-up is a few dozen direct messages.
const (
	DefaultBroadcastRate  = 2
	DefaultBroadcastBurst = 20
	DefaultMessageRate    = 25
	DefaultMessageBurst   = 100
)

// budgetEntries bounds the members whose budgets are remembered.
const budgetEntries = 100_000

func (o *Options) setDefaults() {
	if o.Hostname == "" {
		o.Hostname = DefaultHostname
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if o.AddressBytes.Rate <= 0 {
		o.AddressBytes.Rate = DefaultAddressByteRate
	}
	if o.AddressBytes.Burst <= 0 {
		o.AddressBytes.Burst = DefaultAddressByteBurst
	}
	o.AddressBytes.Burst = max(o.AddressBytes.Burst, cost(int(o.MaxFrameBytes)))
	if o.RequestRate <= 0 {
		o.RequestRate = DefaultRequestRate
	}
	if o.RequestBurst <= 0 {
		o.RequestBurst = DefaultRequestBurst
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.BroadcastBudget.Rate <= 0 || o.BroadcastBudget.Burst <= 0 {
		o.BroadcastBudget = Budget{Rate: DefaultBroadcastRate, Burst: DefaultBroadcastBurst}
	}
	if o.MessageBudget.Rate <= 0 || o.MessageBudget.Burst <= 0 {
		o.MessageBudget = Budget{Rate: DefaultMessageRate, Burst: DefaultMessageBurst}
	}
	if o.MaxEventBytes <= 0 {
		o.MaxEventBytes = DefaultMaxEventBytes
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.MaxConnsPerClient <= 0 {
		o.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
	if o.MaxConnsPerAddress <= 0 {
		o.MaxConnsPerAddress = DefaultMaxConnsPerAddress
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.SendBuffer == 0 {
		o.SendBuffer = DefaultSendBuffer
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = DefaultQueueBytes
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PongTimeout <= 0 {
		o.PongTimeout = DefaultPongTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.GatewayTimeout <= 0 {
		o.GatewayTimeout = DefaultGatewayTimeout
	}
	if o.ReportWorkers <= 0 {
		o.ReportWorkers = DefaultReportWorkers
	}
	if o.LoginTimeout <= 0 {
		o.LoginTimeout = DefaultLoginTimeout
	}
	if o.LoginWait == 0 {
		o.LoginWait = DefaultLoginWait
	} else if o.LoginWait < 0 {
		o.LoginWait = 0
	}
	if o.LeaveGrace <= 0 {
		o.LeaveGrace = DefaultLeaveGrace
	}
	if o.RemovedRefusal <= 0 {
		o.RemovedRefusal = DefaultRemovedRefusal
	}
}

// Hub is the embedded Verto server. Create it with New, mount it with
// ServeHTTP, stop it with Shutdown.
type Hub struct {
	opts    Options
	log     *slog.Logger
	reg     *registry
	methods map[string]method
	origins originPolicy

	ids      atomic.Uint64 // server request ids, shared by all connections
	queued   queueTotal    // what deliveries hold in every connection's queue
	eventSeq atomic.Uint64 // Event-Sequence of gateway lookups
	coreUUID string        // Core-UUID of gateway lookups

	root    context.Context // parent of every connection's context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // one per connection (its loop, reader and writer)
	watcher chan struct{}  // closed when watchWrites returns
	reports *reporter
	outage  *outage // whether the gateway answers; reports to make again (outage.go)
	budgets *budgets
	traffic *budgets    // per address: what its connections' frames may weigh (its first bucket)
	scratch scratchPool // writers' buffers for event frames
	leaves  leaves

	mu       sync.Mutex
	closed   bool
	shutdown sync.Once
	stopped  chan struct{} // closed when the first Shutdown has finished
}

// New returns a Hub. It panics if opts.Gateway is nil or opts.Domain is
// empty: both are wiring mistakes that must fail at start-up.
func New(opts Options) *Hub {
	if opts.Gateway == nil {
		panic("hub: Options.Gateway is required")
	}
	if opts.Domain == "" {
		panic("hub: Options.Domain is required")
	}
	opts.setDefaults()
	root, cancel := context.WithCancel(context.Background())
	h := &Hub{
		opts:     opts,
		log:      opts.Logger,
		reg:      newRegistry(opts.Fabric),
		origins:  newOriginPolicy(opts.AllowedOrigins),
		coreUUID: uuid.Must(uuid.NewRandomFromReader(rand.Reader)).String(),
		root:     root,
		cancel:   cancel,
		watcher:  make(chan struct{}),
		stopped:  make(chan struct{}),
		budgets:  newBudgets(opts.BroadcastBudget, opts.MessageBudget, budgetEntries),
		traffic:  newBudgets(opts.AddressBytes, opts.AddressBytes, budgetEntries),
	}
	h.queued.max = int64(opts.MaxQueuedBytes)
	h.methods = methodTable()
	h.reports = newReporter(h)
	h.outage = newOutage()
	go h.watchWrites()
	go h.resync()
	if opts.Fabric != nil {
		opts.Fabric.Start(local{h})
	}
	return h
}

// watchWrites is the write timeout: it cuts every connection whose current
// write has taken longer than WriteTimeout. One watchdog for all
// connections costs less than a timer per frame.
func (h *Hub) watchWrites() {
	defer close(h.watcher)
	tick := time.NewTicker(max(h.opts.WriteTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-h.root.Done():
			return
		case now := <-tick.C:
			limit := now.Add(-h.opts.WriteTimeout).UnixNano()
			h.reg.eachConn(func(c *conn) {
				if since := c.writeSince.Load(); since != 0 && since < limit {
					h.log.Info("verto: write timeout", "addr", c.addr)
					h.opts.Metrics.SlowReaderClosed(metrics.SlowWriteTimeout)
					c.kill()
				}
			})
		}
	}
}

// hold counts work (a connection, or what the fabric asks of the hub)
// in h.wg, so that Shutdown waits for it; false once shutting down.
func (h *Hub) hold() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

// nextID returns the next server request id (1, 2, …).
func (h *Hub) nextID() uint64 { return h.ids.Add(1) }

// ServeHTTP upgrades the request to a WebSocket and serves the connection
// until it closes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.hold() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.wg.Done()

	if !h.origins.allowed(r) {
		h.log.Info("verto: origin refused", "origin", r.Header.Get("Origin"), "host", r.Host)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	ip := forwarded.LimitKey(r.RemoteAddr)
	if !h.reg.admitAddress(ip, h.opts.MaxConnsPerAddress) {
		h.log.Warn("verto: too many connections from address", "client", ip)
		h.opts.Metrics.BudgetRefused(metrics.BudgetAddress)
		http.Error(w, "too many connections", http.StatusTooManyRequests)
		return
	}
	defer h.reg.releaseAddress(ip)

	if h.opts.SendBuffer > 0 {
		w = sendBuffered{w, h.opts.SendBuffer}
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		h.log.Info("verto: upgrade failed", "err", err)
		return
	}
	ws.SetReadLimit(h.opts.MaxFrameBytes)
	h.opts.Metrics.ConnOpened()
	defer h.opts.Metrics.ConnClosed()
	c := newConn(h, ws, r.RemoteAddr)
	c.run()
}

// Shutdown closes every connection (status 1001) and waits for their
// goroutines and for every queued report to be posted. A connection still
// open after 2 s (at most half of ctx's time) is cut: its peer stopped
// reading, or does not answer the close frame it was sent. If ctx ends first,
// the remaining sockets are cut without a closing handshake and Shutdown
// still waits for the goroutines, then returns ctx's error. Calling it
// again waits for the first call to finish and returns nil.
func (h *Hub) Shutdown(ctx context.Context) error {
	var err error
	first := false
	h.shutdown.Do(func() {
		first = true
		defer close(h.stopped)
		err = h.shutdownOnce(ctx)
	})
	if !first {
		select {
		case <-h.stopped:
		case <-ctx.Done():
			return fmt.Errorf("hub shutdown: %w", ctx.Err())
		}
	}
	return err
}

func (h *Hub) shutdownOnce(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.stopLeaves()

	for _, c := range h.reg.all() {
		c.stop(websocket.StatusGoingAway)
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	// Closing takes a connection a moment: its queued frames and the
	// close frame written, the peer's close frame read. One whose peer
	// stopped reading would hold its writer, and so the shutdown, until
	// WriteTimeout (a whole grace), and the closing handshake waits up to
	// 5 s for an answer: what is still open after closeWait is cut. By
	// then a peer that reads has its close frame.
	closeWait := shutdownCloseWait
	if deadline, ok := ctx.Deadline(); ok {
		closeWait = min(closeWait, time.Until(deadline)/2)
	}
	cut := time.NewTimer(closeWait)
	defer cut.Stop()
	for {
		select {
		case <-done:
			h.closeReports(ctx)
			h.cancel()
			<-h.watcher
			return nil
		case <-cut.C:
			for _, c := range h.reg.all() {
				h.log.Info("verto: not closed in time while shutting down; cut", "addr", c.addr)
				c.kill()
			}
		case <-ctx.Done():
			h.cancel()
			<-done
			h.closeReports(ctx)
			<-h.watcher
			return fmt.Errorf("hub shutdown: %w", ctx.Err())
		}
	}
}

// closeReports makes the reports still queued, until ctx ends, and says
// how many it had to drop (their clients' connected times are then wrong
// until their next login, or the restart's own reconcile).
func (h *Hub) closeReports(ctx context.Context) {
	if n := h.reports.close(ctx); n > 0 {
		h.log.Warn("verto: reports not made: the shutdown's time ran out", "dropped", n)
	}
}

// shutdownCloseWait is how long Shutdown lets connections close with a
// handshake before it cuts those still open (at most half its context's
// time).
const shutdownCloseWait = 2 * time.Second

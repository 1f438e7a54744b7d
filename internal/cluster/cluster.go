// Package cluster joins the embedded Verto hubs of several channels
// processes into one over NATS (core publish/subscribe; JetStream only for
// the per-channel client count): a Node implements hub.Fabric.
//
// Each process is a node with a random id. Broadcasts travel on a subject
// per event channel, which a node listens to while it has local
// subscribers there or local members allowed there; direct messages,
// takeovers, budget notes and requests for budget levels on a subject per
// user, which a node listens to while the user has connections on it.
// Every node announces, on one subject, each change of its members (users
// with live connections) with a sequence number, and a heartbeat every
// second carrying the latest number; a node that misses a change asks for
// the whole membership again. A member's budgets follow it: every node
// charges the broadcasts it hears, a node whose member leaves announces
// what was left of its budgets, and a node where a member arrives while
// on other nodes asks them for theirs, its spending waiting for the
// answers. A node silent for Expiry is dead: its members vanish, and each
// other node delivers to its own subscribers the leave events those
// members could not send. docs/HUB.md has the subjects, the guarantees
// and every fault.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"channels/internal/hub"
)

// Options configure a Node.
type Options struct {
	// URL is the NATS server, or a comma-separated list of the servers of
	// a NATS cluster: nats://[user:pass@]host:4222 or tls://… Required.
	URL string
	// Prefix is the root of every subject (letters, digits, '-', '_',
	// dot-separated), so that several sites can share one NATS. Default
	// "channels".
	Prefix string
	// Name is the connection's name on the NATS server (its monitoring
	// shows it). Default "channels".
	Name string
	// Logger receives connection losses and recoveries, dead nodes, and
	// errors. Default: discard.
	Logger *slog.Logger
	// Heartbeat is how often a node says it is alive. Default 1 s.
	Heartbeat time.Duration
	// Expiry is how long a node may stay silent before the others take it
	// for dead. Default DefaultExpiry.
	Expiry time.Duration
	// Places makes Admit count clients per channel over the cluster, in a
	// JetStream key-value bucket (the server must run with JetStream).
	// Without it Admit answers Unavailable and each hub counts its own.
	Places bool
	// Presence reads a local member's broadcast (its params as stamped):
	// Announce when it says the member is present, Goodbye when it says
	// the member leaves, anything else otherwise. A node keeps each local
	// member's latest announcement per channel, and gives them to a node
	// that took it for dead when that one hears it again, so that the
	// browsers there, told that its members left, learn them again. Nil:
	// nothing is kept, and after such a mistake browsers learn the
	// members again at their next announcement.
	Presence func(params []byte) Presence

	clk clock // nil: the system's (tests give a fake)
}

// Presence is what Options.Presence says of a broadcast.
type Presence int

// What a broadcast says of its sender's presence.
const (
	NotPresence Presence = iota
	Announce
	Goodbye
)

// DefaultPrefix is the subject root when Options.Prefix is empty.
const DefaultPrefix = "channels"

// DefaultExpiry is how long a node may stay silent before the others take
// it for dead. Heartbeats leave every second; on this project's 2-core
// machine, with four busy-looping processes beside three nodes serving
// 900 members, the longest gap measured between two heartbeats of one
// node was 2.4 s (4.8 s with the race detector); see docs/HUB.md. Ten
// seconds keeps a loaded machine's pauses from killing anybody, and a
// node that was only silent heals when heard again anyway; what it costs
// is the time a process that really died keeps its members listed
// (browsers of its own reconnect to the others within seconds).
const DefaultExpiry = 10 * time.Second

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// ValidPrefix reports whether p can be a subject root.
func ValidPrefix(p string) bool { return len(p) <= 64 && prefixRE.MatchString(p) }

// ValidURL reports whether u names NATS servers the client can dial.
func ValidURL(u string) error {
	for _, s := range strings.Split(u, ",") {
		p, err := url.Parse(strings.TrimSpace(s))
		if err != nil || p.Host == "" {
			return fmt.Errorf("cluster URL %q: want nats://[user:pass@]host:port or tls://…", Redact(s))
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("cluster URL %q: scheme must be nats, tls, ws or wss", Redact(s))
		}
	}
	return nil
}

// Redact hides the password (or token) of URLs, for logs.
func Redact(u string) string {
	parts := strings.Split(u, ",")
	for i, s := range parts {
		if p, err := url.Parse(strings.TrimSpace(s)); err == nil && p.User != nil {
			p.User = url.User("xxxxx")
			parts[i] = p.String()
		}
	}
	return strings.Join(parts, ",")
}

// Stats count what a node went through, for metrics.
type Stats struct {
	Connected   bool
	Disconnects uint64 // connections to NATS lost
	Reconnects  uint64 // and found again
	InMsgs      uint64 // messages received from NATS
	OutMsgs     uint64 // messages sent
	DeadNodes   uint64 // other nodes taken for dead
	Nodes       int    // other live nodes known
	Revived     uint64 // nodes taken for dead heard again, their members given back
	Unreadable  uint64 // messages in a wire version this node does not read
	Stalls      uint64 // times this node's own loop stalled longer than a heartbeat
	ReadyLate   uint64 // replies to logins or subscriptions that went out before NATS confirmed (Ready's deadline passed)
	ClockJumps  uint64 // clock values heard that were implausibly far ahead, ignored
	LevelsLate  uint64 // members arrived here whose other nodes did not give their budget levels in time
	Unsent      uint64 // publishes that failed, dropped (NATS unreachable: nothing is buffered)
	Linked      bool   // NATS connected and settled: Linked says yes for a target on a peer heard lately
}

// Node is one process's member of the cluster. It implements hub.Fabric.
type Node struct {
	opts Options
	log  *slog.Logger
	id   string
	root string
	nc   *nats.Conn

	local  hub.Local
	places *places
	tbl    table

	mu        sync.Mutex // guards what the hub reports, until it is published
	subCount  map[string]int
	subDirty  map[string]struct{}
	userWant  map[string]bool
	userDirty map[string]struct{}
	deltas    []hub.Member // Conns 0: left
	wake      chan struct{}
	presence  map[string]map[string][]byte // local member → channel → its latest announcement
	homes     map[string][]string          // local member → the channel subjects counted for it in subCount

	// pubMu guards what this node has made of the hub's reports at NATS:
	// its subscriptions and its membership as published. The loop and
	// Ready take it.
	pubMu    sync.Mutex
	evSubs   map[string]*nats.Subscription
	userSubs map[string]*nats.Subscription
	userIdle map[string]time.Time // users gone from here whose subject we still hear
	members  map[string]hub.Member
	seq      uint64
	buf      enc // membership changes are encoded here
	// unsure: a subscription was sent that no round trip has confirmed
	// yet. Atomic, so that nats.go's reconnect handler never waits for
	// pubMu (a publish stalled under it would hold up every handler).
	unsure atomic.Bool

	// connected is whether NATS is connected, as nats.go's connection
	// handlers last said: the reply path reads it instead of
	// nc.IsConnected, which takes the connection's lock, held by a
	// Publish writing to a stalled socket. connMu orders the first value
	// with the handlers (connSeen: a handler has run).
	connMu    sync.Mutex
	connSeen  bool
	connected atomic.Bool
	// settling is when NATS came back (nil: settled): until every peer
	// has been heard since, or settleWait has passed, a peer may not have
	// subscribed again, and Linked says no.
	settling atomic.Pointer[settling]
	unsent   atomic.Uint64 // publishes that failed (NATS unreachable)

	bar        barrier       // Ready's rounds
	readyLate  atomic.Uint64 // Ready calls whose deadline passed
	lateWarned atomic.Bool   // one warning per stretch of late rounds
	clock      atomic.Uint64 // hybrid logical clock of logins (Stamp), never below any plausible value heard
	clockJumps atomic.Uint64

	busyMu    sync.Mutex
	busyLocal map[string]time.Time // local users said to be busy, when last said
	busyWake  chan struct{}

	// levelMu guards the budget levels this node awaits: of members that
	// arrived here while on other nodes, by member.
	levelMu    sync.Mutex
	waits      map[string]*levelAsk
	nonce      uint64
	levelsLate atomic.Uint64

	gone serial // Gone, Back and Remove, in the order of the deaths, returns and removals

	reqs        chan request // membership and replay requests, for the loop
	reconnected chan struct{}
	started     time.Time
	clk         clock
	graceUntil  atomic.Int64           // nanoseconds after started (on clk) before which nobody expires
	stallUntil  atomic.Int64           // nanoseconds after started (on clk) before which nobody is taken for silent
	checked     atomic.Int64           // nanoseconds after started (on clk) of the loop's last check
	lastErr     atomic.Pointer[string] // of the latest failed attempt to connect
	disconnects atomic.Uint64
	reconnects  atomic.Uint64
	deadNodes   atomic.Uint64
	revived     atomic.Uint64
	unreadable  atomic.Uint64
	stalls      atomic.Uint64
	warnMu      sync.Mutex
	warned      map[byte]bool // wire versions already logged as unreadable

	startOnce sync.Once
	stop      context.CancelFunc
	ctx       context.Context
	done      chan struct{}
	closeOnce sync.Once
}

// request is a membership request (sync) or a replay request (revive)
// for the loop to answer.
type request struct {
	reply    string
	from     string
	revive   bool
	reported bool
}

// New connects to NATS and returns a Node. It does not wait for NATS: a
// server that cannot be reached is logged and retried forever; until it
// answers, direct messages to members on other processes are refused
// (Linked) and nothing is published (nothing is buffered either).
func New(opts Options) (*Node, error) { return newNode(opts, wireMin, wireMax) }

func newNode(opts Options, vmin, vmax byte) (*Node, error) {
	if err := ValidURL(opts.URL); err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !ValidPrefix(opts.Prefix) {
		return nil, fmt.Errorf("cluster prefix %q: want letters, digits, '-', '_', dot-separated", opts.Prefix)
	}
	if opts.Name == "" {
		opts.Name = "channels"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	if opts.Expiry <= 0 {
		opts.Expiry = DefaultExpiry
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	clk := opts.clk
	if clk == nil {
		clk = sysClock{}
	}
	now := clk.now()
	n := &Node{
		opts:        opts,
		log:         opts.Logger,
		id:          hex.EncodeToString(b[:]),
		root:        opts.Prefix,
		subCount:    make(map[string]int),
		subDirty:    make(map[string]struct{}),
		userWant:    make(map[string]bool),
		userDirty:   make(map[string]struct{}),
		wake:        make(chan struct{}, 1),
		evSubs:      make(map[string]*nats.Subscription),
		userSubs:    make(map[string]*nats.Subscription),
		userIdle:    make(map[string]time.Time),
		members:     make(map[string]hub.Member),
		presence:    make(map[string]map[string][]byte),
		homes:       make(map[string][]string),
		waits:       make(map[string]*levelAsk),
		busyLocal:   make(map[string]time.Time),
		busyWake:    make(chan struct{}, 1),
		reqs:        make(chan request, 64),
		warned:      make(map[byte]bool),
		reconnected: make(chan struct{}, 1),
		started:     now,
		ctx:         ctx,
		stop:        cancel,
		done:        make(chan struct{}),
	}
	n.clk = clk
	n.tbl.init(vmin, vmax)
	n.tbl.settle(n.started.Add(opts.Expiry), opts.Expiry)
	n.clock.Store(micros(n.clk.wall()))
	n.log = n.log.With("node", n.id)
	where := Redact(opts.URL)
	nc, err := nats.Connect(opts.URL,
		nats.Name(opts.Name),
		nats.NoEcho(), // a node delivers its own broadcasts itself
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.IgnoreAuthErrorAbort(), // a refused password too: NATS may be mid-rotation
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(3),
		// No reconnect buffer: a publish made while the connection is
		// down fails at once (ErrReconnectBufExceeded, counted as
		// Stats.Unsent) instead of waiting in nats.go to be flushed on
		// reconnect — when the other processes may not have subscribed
		// again yet (it was lost), or may have (it came seconds late, in
		// a burst). Core NATS is at-most-once: Linked tells the hub when
		// a direct message cannot cross, so that it refuses it.
		nats.ReconnectBufSize(-1),
		// A write to a socket NATS stopped reading fails after this
		// (nats.go's default is a minute, during which every publish and
		// subscription waits for the connection's lock), and the
		// connection is made again.
		nats.FlusherTimeout(flusherTimeout),
		nats.ConnectHandler(func(nc *nats.Conn) {
			// nats.go counts a reconnect when its first connection comes
			// from its retries (NATS was unreachable when New was called):
			// that connection settles as a reconnect does, and longer.
			if nc.Stats().Reconnects > 0 {
				n.startSettle(true)
			}
			n.setConnected(true)
			n.log.Info("cluster: connected to NATS", "url", where)
			n.signalReconnect()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.setConnected(false)
			if n.ctx.Err() != nil {
				return // Close
			}
			n.disconnects.Add(1)
			n.log.Warn("cluster: lost the connection to NATS; messages to other processes are refused or dropped until it is back", "url", where, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			// Before connected: Linked must never see the new connection
			// without its settling.
			n.startSettle(false)
			n.setConnected(true)
			n.reconnects.Add(1)
			n.unsure.Store(true) // every subscription is sent again
			n.log.Info("cluster: reconnected to NATS", "url", Redact(nc.ConnectedUrlRedacted()))
			n.signalReconnect()
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			// Each new reason once (a wrong password, a refused TLS
			// certificate), every attempt at debug level.
			level := slog.LevelDebug
			msg := fmt.Sprint(err)
			if prev := n.lastErr.Swap(&msg); prev == nil || *prev != msg {
				level = slog.LevelWarn
			}
			n.log.Log(context.Background(), level, "cluster: cannot connect to NATS; retrying", "err", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			n.log.Warn("cluster: NATS error", "subject", subj, "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			n.setConnected(false)
			n.log.Debug("cluster: NATS connection closed")
		}),
	)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cluster: connect to %s: %w", where, err)
	}
	n.nc = nc
	n.connMu.Lock()
	if !n.connSeen { // no handler has said anything yet
		// A first connection that came from the retries meanwhile is left
		// to its handler, which starts its settling first.
		n.connected.Store(nc.IsConnected() && nc.Stats().Reconnects == 0)
	}
	n.connMu.Unlock()
	if !nc.IsConnected() {
		n.log.Warn("cluster: NATS not reachable; retrying every second, each process serves its own connections meanwhile", "url", where)
	}
	if opts.Places {
		n.places = newPlaces(n)
	}
	return n, nil
}

// setConnected records what a connection handler says. nats.go calls
// the handlers one at a time, in the order of the events, so the last one
// is the state.
func (n *Node) setConnected(c bool) {
	n.connMu.Lock()
	n.connSeen = true
	n.connected.Store(c)
	n.connMu.Unlock()
}

// ID is the node's id.
func (n *Node) ID() string { return n.id }

// Stats reports the node's counters.
func (n *Node) Stats() Stats {
	s := n.nc.Stats()
	peers := int(n.tbl.npeers.Load())
	return Stats{
		Connected:   n.connected.Load(),
		Disconnects: n.disconnects.Load(),
		Reconnects:  n.reconnects.Load(),
		InMsgs:      s.InMsgs,
		OutMsgs:     s.OutMsgs,
		DeadNodes:   n.deadNodes.Load(),
		Nodes:       peers,
		Revived:     n.revived.Load(),
		Unreadable:  n.unreadable.Load(),
		Stalls:      n.stalls.Load(),
		ReadyLate:   n.readyLate.Load(),
		ClockJumps:  n.clockJumps.Load(),
		LevelsLate:  n.levelsLate.Load(),
		Unsent:      n.unsent.Load(),
		Linked:      n.linked(),
	}
}

func (n *Node) signalReconnect() {
	// Others' silence while we were away proves nothing: no expiry for a
	// while.
	n.graceFor(n.opts.Expiry)
	select {
	case n.reconnected <- struct{}{}:
	default:
	}
}

// graceFor makes sure nobody expires for d from now.
func (n *Node) graceFor(d time.Duration) { n.extend(&n.graceUntil, d) }

// inGrace reports whether nobody may expire now (see graceFor).
func (n *Node) inGrace() bool { return n.before(&n.graceUntil) }

// extend moves the deadline at (nanoseconds after started, on clk) to d
// from now, unless it is later already.
func (n *Node) extend(at *atomic.Int64, d time.Duration) {
	until := int64(n.clk.now().Sub(n.started) + d)
	for {
		cur := at.Load()
		if until <= cur || at.CompareAndSwap(cur, until) {
			return
		}
	}
}

// noteCheck records that the loop ran its check at now.
func (n *Node) noteCheck(now time.Time) { n.checked.Store(int64(now.Sub(n.started))) }

// stalled reports whether this node cannot tell a silent peer from one
// whose heartbeats wait unread: its loop stalled lately, or has not run
// its check for more than a heartbeat (a stall not noticed yet: after a
// SIGSTOP every goroutine resumes at once, and a connection's may ask
// Linked before the loop has looked at the clock).
func (n *Node) stalled(now time.Time) bool {
	since := int64(now.Sub(n.started))
	return since < n.stallUntil.Load() || since-n.checked.Load() > int64(n.opts.Heartbeat)
}

// before reports whether now is before the deadline at (see extend).
func (n *Node) before(at *atomic.Int64) bool { return int64(n.clk.now().Sub(n.started)) < at.Load() }

func (n *Node) subject(parts ...string) string {
	return n.root + "." + strings.Join(parts, ".")
}

// version is the wire version this node speaks now.
func (n *Node) version() byte { return byte(n.tbl.speak.Load()) }

// newMsg starts a message of kind in the wire version this node speaks.
func (n *Node) newMsg(kind byte, size int) *enc { return newEnc(n.version(), kind, size) }

// open reads a message's envelope; a message in a wire version this node
// does not read is counted and logged (once per version), never silently
// dropped.
func (n *Node) open(msg *nats.Msg) (kind byte, d dec, ok bool) {
	v, kind, d, ok := envelope(msg.Data, n.tbl.vmin, n.tbl.vmax)
	if ok {
		return kind, d, true
	}
	n.unreadable.Add(1)
	n.warnMu.Lock()
	first := !n.warned[v]
	n.warned[v] = true
	n.warnMu.Unlock()
	if first {
		what := fmt.Sprintf("wire version %d", v)
		if v == 0 {
			what = "no wire version (a release before they existed)"
		}
		n.log.Warn("cluster: dropped a message in "+what+", which this process does not read: another release is running; finish the upgrade or roll it back",
			"reads", fmt.Sprintf("%d-%d", n.tbl.vmin, n.tbl.vmax), "subject", msg.Subject)
	}
	return 0, dec{}, false
}

// Start implements hub.Fabric: it subscribes the node's own subjects and
// starts its loop.
func (n *Node) Start(l hub.Local) {
	n.startOnce.Do(func() {
		n.local = l
		subs := []struct {
			subject string
			fn      nats.MsgHandler
		}{
			{n.subject("nodes"), n.onNodes},
			{n.subject("node", n.id, "sync"), n.onSyncRequest},
			{n.subject("inbox", n.id), n.onInbox},
		}
		for _, s := range subs {
			if _, err := n.nc.Subscribe(s.subject, s.fn); err != nil {
				n.log.Error("cluster: subscribe", "subject", s.subject, "err", err)
			}
		}
		go n.loop()
	})
}

// Close says goodbye to the other nodes and closes the connection. Call
// it after the hub's Shutdown, so the members' departures go out first.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		if n.local != nil {
			n.stop()
			<-n.done
		}
		if n.places != nil {
			n.places.wait(ctx)
		}
		if n.connected.Load() {
			_ = n.nc.FlushTimeout(2 * time.Second)
		}
		n.nc.Close()
	})
	return nil
}

// loop publishes what the hub reported, in order, keeps the NATS
// subscriptions in step with the local subscribers and members, sends
// heartbeats, answers membership and replay requests, tells the others
// which local users are busy, and finds dead nodes.
func (n *Node) loop() {
	defer close(n.done)
	tick := time.NewTicker(n.opts.Heartbeat)
	defer tick.Stop()
	n.heartbeat()
	sweep := time.NewTicker(placesSweep)
	defer sweep.Stop()
	// The first sweep comes once every live node has been heard: what the
	// nodes of a cluster that crashed as a whole left goes within seconds
	// of its restart.
	firstSweep := time.NewTimer(n.opts.Expiry + n.opts.Heartbeat)
	defer firstSweep.Stop()
	check := time.NewTicker(n.opts.Heartbeat / 4)
	defer check.Stop()
	lastCheck := n.clk.now()
	n.noteCheck(lastCheck)
	quiet := make(map[string]bool) // peers found silent, logged once
	// A burst of changes (a wave of logins) goes out in few messages: a
	// change within flushGap of the last flush waits for the rest.
	var lastFlush time.Time
	gap := time.NewTimer(flushGap)
	gap.Stop()
	gapArmed := false
	busy := time.NewTimer(busyPoll)
	busy.Stop()
	busyArmed := false
	for {
		select {
		case <-n.ctx.Done():
			n.flushLocal()
			n.publish(n.subject("nodes"), n.plain(kindBye).b)
			return
		case <-n.wake:
			// Alone, nothing is published: no reason to wait.
			if wait := flushGap - time.Since(lastFlush); wait > 0 && n.tbl.npeers.Load() > 0 {
				if !gapArmed {
					gap.Reset(wait)
					gapArmed = true
				}
				continue
			}
			n.flushLocal()
			lastFlush = time.Now()
		case <-gap.C:
			gapArmed = false
			n.flushLocal()
			lastFlush = time.Now()
		case req := <-n.reqs:
			n.flushLocal()
			if req.revive {
				n.replay(req)
			} else {
				n.sendSnapshot(req.reply)
			}
		case <-n.reconnected:
			n.flushLocal()
			n.heartbeat()
			if n.places != nil {
				n.places.spawn(func() { n.places.ready(true) })
			}
		case now := <-tick.C:
			n.flushLocal()
			n.heartbeat()
			n.pubMu.Lock()
			for uid, since := range n.userIdle {
				if now.Sub(since) > userLinger {
					n.follow(n.userSubs, uid, "", false, nil)
					delete(n.userIdle, uid)
				}
			}
			n.pubMu.Unlock()
		case <-check.C:
			n.tbl.respeak(time.Now())
			// A check that comes late means this process stalled (a GC
			// pause, a starved CPU, SIGSTOP): the others' heartbeats may
			// still wait unread, so their silence proves nothing yet. (A
			// tick carries the time it was due, not the time it came.)
			now := n.clk.now()
			if stall := now.Sub(lastCheck); stall > n.opts.Heartbeat {
				n.stalls.Add(1)
				n.graceFor(2 * n.opts.Heartbeat)
				// Nor is anybody silent: a stalled process would refuse
				// direct messages to everyone else's members.
				n.extend(&n.stallUntil, 2*n.opts.Heartbeat)
				n.log.Warn("cluster: this process stalled; nobody is taken for dead until the others are heard", "stall", stall.Round(time.Millisecond))
			}
			lastCheck = now
			n.noteCheck(now)
			n.expire(now)
			n.noteSilent(now, quiet)
			n.expireWaits(now)
			n.tbl.sweepBusy(now)
		case <-n.busyWake:
			if !busyArmed {
				busy.Reset(busyPoll)
				busyArmed = true
			}
		case now := <-busy.C:
			busyArmed = false
			if n.pollBusy(now) {
				busy.Reset(busyPoll)
				busyArmed = true
			}
		case <-firstSweep.C:
			sweep.Reset(placesSweep)
			n.sweepPlaces()
		case <-sweep.C:
			n.sweepPlaces()
		}
	}
}

// placesSweep is how often a node rewrites the channel counts it could
// not write, and the leader removes from them the entries of nodes that
// are not alive.
const placesSweep = 15 * time.Second

// sweepPlaces runs a sweep of the channel counts, off the loop.
func (n *Node) sweepPlaces() {
	if n.places == nil {
		return
	}
	now := n.clk.now()
	leader := n.isLeader() && now.Sub(n.started) >= n.opts.Expiry && !n.inGrace()
	n.places.spawn(func() { n.places.sweep(leader, false) })
}

func (n *Node) plain(kind byte) *enc {
	e := n.newMsg(kind, 32)
	e.str(n.id)
	return e
}

func (n *Node) publish(subject string, data []byte) {
	if err := n.nc.Publish(subject, data); err != nil {
		n.unsent.Add(1)
		n.log.Debug("cluster: publish", "subject", subject, "err", err)
	}
}

// heartbeat says the node is alive, how far its membership changes have
// got, its logical clock, the wire versions it reads and its features.
func (n *Node) heartbeat() {
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	e := n.plain(kindHeartbeat)
	e.num(n.seq)
	e.num(n.clock.Load())
	e.num(uint64(n.tbl.vmin))
	e.num(uint64(n.tbl.vmax))
	e.num(features) // read by releases that know features
	n.publish(n.subject("nodes"), e.b)
}

// flushLocal applies what the hub reported since the last call:
// subscriptions, then membership changes.
func (n *Node) flushLocal() {
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	n.mu.Lock()
	deltas := n.deltas
	n.deltas = nil
	var evs, users []string
	var evWant, userWant []bool
	for tok := range n.subDirty {
		evs = append(evs, tok)
		evWant = append(evWant, n.subCount[tok] > 0)
		if n.subCount[tok] <= 0 {
			delete(n.subCount, tok)
		}
	}
	clear(n.subDirty)
	for uid := range n.userDirty {
		users = append(users, uid)
		userWant = append(userWant, n.userWant[uid])
		if !n.userWant[uid] {
			delete(n.userWant, uid)
		}
	}
	clear(n.userDirty)
	n.mu.Unlock()

	for i, tok := range evs {
		n.follow(n.evSubs, tok, n.subject("ev", tok), evWant[i], n.onEvent)
	}
	now := time.Now()
	for i, uid := range users {
		if !userWant[i] {
			// Kept a while: a reload or a reconnect comes back at once, and
			// subscribing again costs NATS a round of SUB and UNSUB.
			if n.userSubs[uid] != nil {
				n.userIdle[uid] = now
			}
			continue
		}
		delete(n.userIdle, uid)
		n.follow(n.userSubs, uid, n.subject("user", token(uid)), true, n.onUser)
	}
	if len(deltas) == 0 {
		return
	}
	// A delta replaces the member's whole entry, so only a member's latest
	// one in this batch need go out. A node that knows no peer publishes
	// none at all, and only counts them: a peer it has not heard of yet
	// that holds its membership sees the gap in the next heartbeat and
	// asks for the whole membership, as after a lost message.
	alone := n.tbl.npeers.Load() == 0
	var arrived []string
	if !alone {
		deltas = latestPerUser(deltas)
		// What is left of the budgets of the members who left goes out
		// before the changes: a node that hears a member left knows its
		// level already, and one that does not yet asks for it.
		var left []levelNote
		for _, m := range deltas {
			_, had := n.members[m.UID]
			switch {
			case m.Conns > 0 && !had:
				arrived = append(arrived, m.UID)
			case m.Conns == 0:
				if l, ok := n.local.Level(m.UID); ok {
					left = append(left, levelNote{uid: m.UID, known: true, level: l})
				}
			}
		}
		n.publishLevels(n.subject("nodes"), 0, left)
	}
	first := n.seq + 1
	for _, m := range deltas {
		if m.Conns == 0 {
			delete(n.members, m.UID)
		} else {
			n.members[m.UID] = m
		}
		n.seq++
	}
	if alone {
		return
	}
	// The changes go out numbered on, several to a message, in parts
	// that stay far below NATS's maximum payload; one buffer for all
	// (Publish copies it).
	subject := n.subject("nodes")
	var body enc
	for len(deltas) > 0 {
		body.b = body.b[:0]
		count := 0
		for count < len(deltas) && len(body.b) < snapshotBytes {
			putMember(&body, deltas[count])
			count++
		}
		e := &n.buf
		if count == 1 {
			e.start(n.version(), kindDelta)
			e.str(n.id)
			e.num(first)
			e.num(n.clock.Load())
		} else {
			e.start(n.version(), kindDeltas)
			e.str(n.id)
			e.num(first)
			e.num(n.clock.Load())
			e.num(uint64(count))
		}
		e.b = append(e.b, body.b...)
		n.publish(subject, e.b)
		deltas, first = deltas[count:], first+uint64(count)
	}
	n.askLevels(arrived)
	if cap(n.buf.b) > 64<<10 {
		n.buf.b = nil // do not keep a burst's memory
	}
}

// latestPerUser keeps each user's last delta, in the order of those.
func latestPerUser(deltas []hub.Member) []hub.Member {
	if len(deltas) < 2 {
		return deltas
	}
	seen := make(map[string]struct{}, len(deltas))
	out := make([]hub.Member, 0, len(deltas))
	for i := len(deltas) - 1; i >= 0; i-- {
		if _, ok := seen[deltas[i].UID]; !ok {
			seen[deltas[i].UID] = struct{}{}
			out = append(out, deltas[i])
		}
	}
	slices.Reverse(out)
	return out
}

// follow subscribes to or unsubscribes from subject (under pubMu).
func (n *Node) follow(subs map[string]*nats.Subscription, key, subject string, want bool, fn nats.MsgHandler) {
	s := subs[key]
	switch {
	case want && s == nil:
		s, err := n.nc.Subscribe(subject, fn)
		if err != nil {
			n.log.Warn("cluster: subscribe", "subject", subject, "err", err)
			return
		}
		n.unsure.Store(true)
		// Generous limits: a burst into a busy channel is delivered late
		// rather than dropped.
		_ = s.SetPendingLimits(1<<16, 64<<20)
		subs[key] = s
	case !want && s != nil:
		_ = s.Unsubscribe()
		delete(subs, key)
	}
}

func putMember(e *enc, m hub.Member) {
	e.str(m.UID)
	e.list(m.Homes)
	e.str(m.Addr)
	e.num(uint64(m.Conns))
}

// getMember reads a member; one without a uid is malformed.
func getMember(d *dec) hub.Member {
	m := hub.Member{UID: d.str(), Homes: d.list(), Addr: d.str(), Conns: int(d.num())}
	if m.UID == "" && d.err == nil {
		d.err = errMalformed
	}
	return m
}

// minMemberBytes is the least a member takes on the wire: two bytes for
// its uid (never empty), one for each of its other three fields.
const minMemberBytes = 5

// skipMember reads past a member without keeping (allocating) it.
func skipMember(d *dec) {
	if uid := d.bytes(); len(uid) == 0 && d.err == nil {
		d.err = errMalformed
	}
	if n := d.num(); n > 0 {
		if n-1 > uint64(len(d.b)) { // each item takes a byte at least
			d.err = errMalformed
			return
		}
		for i := uint64(1); i < n && d.err == nil; i++ {
			d.skip()
		}
	}
	d.skip()
	d.num()
}

// checkMembers reports whether count members follow. The count is what
// the message claims: it is checked against what the bytes left can hold,
// then the members are read past without allocating, so that nothing is
// ever made for a count, only for the members really there.
func checkMembers(d *dec, count uint64) bool {
	if d.err != nil {
		return false
	}
	if count > uint64(len(d.b))/minMemberBytes {
		d.err = errMalformed
		return false
	}
	probe := *d
	for i := uint64(0); i < count && probe.err == nil; i++ {
		skipMember(&probe)
	}
	d.err = probe.err
	return d.err == nil
}

// getMembers reads count members (see checkMembers).
func getMembers(d *dec, count uint64) []hub.Member {
	if !checkMembers(d, count) {
		return nil
	}
	members := make([]hub.Member, count)
	for i := range members {
		members[i] = getMember(d)
	}
	return members
}

const (
	// flushGap is the least time between two flushes of what the hub
	// reported, unless a heartbeat, a membership request or Ready comes
	// between: a change waits at most this long.
	flushGap = 2 * time.Millisecond
	// userLinger is how long a node keeps listening to a user's subject
	// after the user's last connection here closed.
	userLinger = 30 * time.Second
	// snapshotBytes bounds one message of a membership answer or a
	// replay (NATS's default maximum payload is 1 MiB).
	snapshotBytes = 256 << 10
	// readyTimeout bounds Ready's round trip to NATS.
	readyTimeout = 2 * time.Second
	// flusherTimeout bounds one write to NATS's socket.
	flusherTimeout = 2 * time.Second
	// busyPoll is how often a node checks whether the local users it
	// said were busy still are; busyRepeat how often it says so again
	// while they are; busyTTL how long the others believe it.
	busyPoll   = 50 * time.Millisecond
	busyRepeat = time.Second
	busyTTL    = 3 * time.Second
	// maxAnnounced bounds the channels whose latest announcement a node
	// keeps per member (a browser announces in its one channel).
	maxAnnounced = 4
)

// sendSnapshot answers a membership request.
func (n *Node) sendSnapshot(reply string) {
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	members := slices.Collect(maps.Values(n.members))
	n.sendParts(reply, members, func(part uint64) *enc {
		e := n.plain(kindSnapshot)
		e.num(n.seq)
		e.num(part)
		return e
	}, func(i int, body *enc) { putMember(body, members[i]) })
}

// replay answers a node that took this one for dead and hears it again:
// every local member, with its latest announcements, so that it can tell
// its browsers about them again and restore their connected times. The
// channel counts that node's leader cleaned are rewritten too.
func (n *Node) replay(req request) {
	n.revived.Add(1)
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	n.log.Warn("cluster: another process had taken this one for dead; giving its members back", "peer", req.from, "members", len(n.members))
	if n.places != nil {
		n.places.spawn(func() { n.places.sweep(false, true) })
	}
	// The announcements are copied under n.mu, which the hub takes under
	// its registry lock, and published without it: a publish may wait
	// for a stalled socket. (The copies share the announcements' bytes,
	// which remember replaces and never changes.)
	members := slices.Collect(maps.Values(n.members))
	anns := make([]map[string][]byte, len(members))
	n.mu.Lock()
	for i, m := range members {
		anns[i] = maps.Clone(n.presence[m.UID])
	}
	n.mu.Unlock()
	n.sendParts(req.reply, members, func(part uint64) *enc {
		e := n.plain(kindReplay)
		e.num(part)
		return e
	}, func(i int, body *enc) {
		putMember(body, members[i])
		body.num(uint64(len(anns[i])))
		for ch, p := range anns[i] {
			body.str(ch)
			body.bytes(p)
		}
	})
}

// sendParts publishes members (a copy: no lock of the hub's is held) to
// reply, put(i) by put, in parts of about snapshotBytes: each part is its
// header (made by start for its number), a flag saying whether it is the
// last, and its count of members. The caller holds pubMu, and no other
// lock.
func (n *Node) sendParts(reply string, members []hub.Member, start func(part uint64) *enc, put func(i int, body *enc)) {
	part := uint64(0)
	var body enc
	count := 0
	emit := func(last bool) {
		e := start(part)
		e.flag(last)
		e.num(uint64(count))
		e.b = append(e.b, body.b...)
		n.publish(reply, e.b)
		part++
		body.b, count = body.b[:0], 0
	}
	for i := range members {
		put(i, &body)
		count++
		if len(body.b) > snapshotBytes {
			emit(false)
		}
	}
	emit(true)
}

// expire takes nodes silent for Expiry for dead, unless this node cannot
// hear anybody itself or has just stalled.
func (n *Node) expire(now time.Time) {
	if !n.connected.Load() || n.inGrace() {
		return
	}
	dead, members, gone, leader := n.tbl.expire(now, n.opts.Expiry, n.id)
	if len(dead) == 0 {
		return
	}
	for _, id := range dead {
		n.deadNodes.Add(1)
		n.log.Warn("cluster: node silent, taken for dead", "dead", id, "members", len(members[id]), "silent", n.opts.Expiry)
	}
	var left []hub.Member
	for _, id := range dead {
		for _, m := range members[id] {
			if gone[m.UID] {
				gone[m.UID] = false // once, if it was on several dead nodes
				left = append(left, m)
			}
		}
		if leader && n.places != nil {
			id, ms := id, members[id]
			n.places.spawn(func() { n.places.dropNode(id, ms) })
		}
	}
	// Off the loop: thousands of leaves and disconnect reports must not
	// hold up this node's heartbeats.
	n.gone.do(func() {
		for _, m := range left {
			n.local.Gone(m, leader)
		}
	})
}

// noteSilent logs the peers that fell silent for more than silentBeats
// heartbeats (direct messages to members only on them are refused, see
// Linked) and those heard again; quiet holds the ones logged. Nothing is
// noted while this node is not linked itself, or has just stalled or
// come back: everybody seems silent then.
func (n *Node) noteSilent(now time.Time, quiet map[string]bool) {
	if !n.linked() || n.inGrace() {
		return
	}
	ids := n.tbl.silent(now, silentBeats*n.opts.Heartbeat)
	for _, id := range ids {
		if !quiet[id] {
			quiet[id] = true
			n.log.Warn("cluster: a process is silent; direct messages to members only there are refused until it is heard again",
				"peer", id, "silent", silentBeats*n.opts.Heartbeat)
		}
	}
	for id := range quiet {
		if !slices.Contains(ids, id) {
			delete(quiet, id)
			if n.alive(id) { // not taken for dead meanwhile
				n.log.Info("cluster: a silent process is heard again", "peer", id)
			}
		}
	}
}

// isLeader reports whether this node has the smallest id among the live
// ones: it alone reports the disconnects of a dead node's members and
// cleans the counts.
func (n *Node) isLeader() bool {
	n.tbl.mu.RLock()
	defer n.tbl.mu.RUnlock()
	return n.tbl.leaderLocked(n.id)
}

// serial runs functions one at a time, in the order given, off the
// caller's goroutine.
type serial struct {
	mu      sync.Mutex
	queue   []func()
	running bool
}

func (s *serial) do(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, fn)
	if !s.running {
		s.running = true
		go s.run()
	}
}

func (s *serial) run() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.running = false
			s.queue = nil
			s.mu.Unlock()
			return
		}
		fn := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		fn()
	}
}

// --- hub.Fabric, called by the hub ---

func (n *Node) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// errNotConnected is Ready's answer while NATS is unreachable.
var errNotConnected = errors.New("cluster: not connected to NATS")

// barrier batches Ready's round trips: every caller waits for a round
// that started after it came, and callers that come while a round is
// under way share the next one.
type barrier struct {
	mu      sync.Mutex
	next    *round
	running bool
}

type round struct {
	done chan struct{}
	err  error
}

// Ready implements hub.Fabric: it sends the subscriptions and membership
// changes the hub reported so far and, if a subscription is among them
// that the server has not confirmed yet, waits for NATS to answer a PING
// sent after them (the server handles a connection's protocol in order,
// so by then the subscriptions are in effect). A login or subscription
// that needs no new subscription (a reconnect, a second tab, a channel
// with subscribers here already) costs no round trip. While NATS is
// unreachable it returns at once with an error: logins must not wait for
// the cluster.
//
// It returns when ctx is done, whatever the round is doing: the round
// runs on a goroutine of its own, and nothing on the caller's path takes
// the NATS connection's lock (which a Publish writing to a stalled socket
// holds). A caller that comes while a round is under way waits for it and
// for the next one, so the caller's deadline is the bound: the hub gives
// a reply two seconds at most. A deadline that passes is counted
// (Stats.ReadyLate) and logged once until a round succeeds again.
func (n *Node) Ready(ctx context.Context) error {
	if !n.connected.Load() {
		return errNotConnected
	}
	b := &n.bar
	b.mu.Lock()
	if b.next == nil {
		b.next = &round{done: make(chan struct{})}
	}
	r := b.next
	if !b.running {
		b.running = true
		go n.rounds()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			n.readyLate.Add(1)
			if n.lateWarned.CompareAndSwap(false, true) {
				n.log.Warn("cluster: NATS did not confirm a subscription in time; replying anyway (logged once until it does)")
			}
		}
		return ctx.Err()
	}
}

// rounds runs Ready's rounds while callers wait for one.
func (n *Node) rounds() {
	b := &n.bar
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		// Only a new subscription needs the round trip: one the server
		// already confirmed is in effect, and what is published goes
		// out in order after it anyway.
		n.flushLocal()
		if n.unsure.Swap(false) {
			if r.err = n.nc.FlushTimeout(readyTimeout); r.err != nil {
				n.unsure.Store(true)
			}
		}
		if r.err == nil {
			n.lateWarned.Store(false)
		}
		close(r.done)
	}
}

// Stamp implements hub.Fabric: a hybrid logical clock. It is Lamport's,
// advanced by every stamp and by every clock value heard in another
// node's heartbeats, membership changes and takeovers, so a login's stamp
// is above that of every login it could have known of; and it is never
// below this host's wall clock in microseconds, so that a node that has
// heard nobody yet (just started) still stamps a login above an older one
// elsewhere when the hosts' clocks roughly agree. Ordering never depends
// on that agreement: the wall clock is only a floor. The clock saturates
// at maxClock rather than wrap.
func (n *Node) Stamp() int64 {
	for {
		cur := n.clock.Load()
		next := min(max(cur+1, micros(n.clk.wall())), maxClock)
		if n.clock.CompareAndSwap(cur, next) {
			return int64(next)
		}
	}
}

// wallClock is the floor of the logical clock: microseconds since 1970.
func wallClock() uint64 { return micros(time.Now()) }

// micros is t in microseconds since 1970 (0 before).
func micros(t time.Time) uint64 { return uint64(max(t.UnixMicro(), 0)) }

// clock is where a node reads the time. wall is the date: the floor of
// the logical clock, which other hosts compare. now is an instant to
// measure durations from: the settling after a reconnect, a peer's
// silence, an expiry's grace. The system's now is time.Now, whose
// monotonic reading Go uses to subtract and compare two such instants,
// so that a step of the wall clock (NTP, an operator, a VM resumed)
// cannot lengthen or cut any of them; they are never turned into
// wall-clock numbers (UnixNano), which would lose it. Tests give a fake.
type clock interface {
	wall() time.Time
	now() time.Time
}

// sysClock is the system's clock.
type sysClock struct{}

func (sysClock) wall() time.Time { return time.Now() }
func (sysClock) now() time.Time  { return time.Now() }

const (
	// maxClock is the largest stamp: an int64, as the hub keeps it.
	maxClock = 1<<63 - 1
	// maxClockJump is the furthest ahead of this node's clock a value
	// heard may be (about 142 years in microseconds: any host's clock,
	// however wrong, since 1970); a value beyond is garbage, and taking
	// it would leave every later stamp of the cluster near the maximum.
	maxClockJump = 1 << 52
)

// observe advances the clock to c, a value another node's clock had,
// unless c is implausibly far ahead (then it is ignored, counted and
// logged once).
func (n *Node) observe(c uint64) {
	for {
		cur := n.clock.Load()
		if c <= cur {
			return
		}
		if c > maxClock || c-cur > maxClockJump {
			if n.clockJumps.Add(1) == 1 {
				n.log.Warn("cluster: ignored a clock value implausibly far ahead (logged once)", "heard", c, "local", cur)
			}
			return
		}
		if n.clock.CompareAndSwap(cur, c) {
			return
		}
	}
}

// UserChanged implements hub.Fabric.
func (n *Node) UserChanged(m hub.Member) {
	n.mu.Lock()
	n.deltas = append(n.deltas, m)
	if !n.userWant[m.UID] {
		n.userWant[m.UID] = true
		n.userDirty[m.UID] = struct{}{}
	}
	n.countHomesLocked(m.UID, m.Homes)
	n.mu.Unlock()
	n.signal()
}

// UserLeft implements hub.Fabric.
func (n *Node) UserLeft(uid string) {
	n.mu.Lock()
	n.deltas = append(n.deltas, hub.Member{UID: uid})
	n.userWant[uid] = false
	n.userDirty[uid] = struct{}{}
	delete(n.presence, uid)
	n.countHomesLocked(uid, nil)
	n.mu.Unlock()
	n.signal()
}

// countHomesLocked makes the node listen to the channels a local member
// is allowed (homes; nil: any, none listened to for it), as if it had a
// subscriber there: so it hears every broadcast the member sends through
// another node, and charges its budget here.
func (n *Node) countHomesLocked(uid string, homes []string) {
	old := n.homes[uid]
	toks := make([]string, 0, len(homes))
	for _, h := range homes {
		if tok := token(mainChannel(h)); !slices.Contains(toks, tok) {
			toks = append(toks, tok)
		}
	}
	if slices.Equal(old, toks) {
		return
	}
	for _, tok := range toks {
		if !slices.Contains(old, tok) {
			n.addSubLocked(tok, 1)
		}
	}
	for _, tok := range old {
		if !slices.Contains(toks, tok) {
			n.addSubLocked(tok, -1)
		}
	}
	if len(toks) == 0 {
		delete(n.homes, uid)
	} else {
		n.homes[uid] = toks
	}
}

// Subscribed implements hub.Fabric.
func (n *Node) Subscribed(channel string) { n.countSub(channel, 1) }

// Unsubscribed implements hub.Fabric.
func (n *Node) Unsubscribed(channel string) { n.countSub(channel, -1) }

func (n *Node) countSub(channel string, d int) {
	n.mu.Lock()
	changed := n.addSubLocked(token(mainChannel(channel)), d)
	n.mu.Unlock()
	if changed {
		n.signal()
	}
}

// addSubLocked counts d reasons to listen to the channel subject tok and
// reports whether listening must start or stop.
func (n *Node) addSubLocked(tok string, d int) bool {
	before := n.subCount[tok]
	n.subCount[tok] = before + d
	changed := (before > 0) != (before+d > 0)
	if changed {
		n.subDirty[tok] = struct{}{}
	}
	return changed
}

// RemoteConns implements hub.Fabric.
func (n *Node) RemoteConns(uid string) int {
	if n.tbl.npeers.Load() == 0 {
		return 0 // alone: no lock on the hub's hot paths
	}
	n.tbl.mu.RLock()
	defer n.tbl.mu.RUnlock()
	return n.tbl.conns[uid]
}

// RemoteAddr implements hub.Fabric: the address a process holding uid
// gave for its latest login there (of several, any).
func (n *Node) RemoteAddr(uid string) string {
	if n.tbl.npeers.Load() == 0 {
		return ""
	}
	return n.tbl.addrOf(uid)
}

// Broadcast implements hub.Fabric. A member's presence announcements are
// kept, to be given again to a node that wrongly took this one for dead.
func (n *Node) Broadcast(sender, channel string, params []byte) {
	if n.opts.Presence != nil {
		n.remember(sender, channel, params)
	}
	e := n.newMsg(kindEvent, len(sender)+len(channel)+len(params))
	e.str(sender)
	e.str(channel)
	e.bytes(params)
	n.publish(n.subject("ev", token(mainChannel(channel))), e.b)
}

func (n *Node) remember(sender, channel string, params []byte) {
	switch n.opts.Presence(params) {
	case Announce:
		n.mu.Lock()
		defer n.mu.Unlock()
		if !n.userWant[sender] {
			return // not a member here (any more)
		}
		anns := n.presence[sender]
		if anns == nil {
			anns = make(map[string][]byte, 1)
			n.presence[sender] = anns
		}
		if _, ok := anns[channel]; ok || len(anns) < maxAnnounced {
			anns[channel] = bytes.Clone(params)
		}
	case Goodbye:
		n.mu.Lock()
		defer n.mu.Unlock()
		if anns := n.presence[sender]; anns != nil {
			delete(anns, channel)
			if len(anns) == 0 {
				delete(n.presence, sender)
			}
		}
	}
}

// settleWait bounds, in heartbeats, how long after NATS came back Linked
// waits to hear every peer it knew: a peer not heard by then is dead or
// cut off, and is treated as any such peer is (silent: its members'
// messages refused; taken for dead after the expiry). A peer that is
// back says so within a heartbeat of its own reconnect, and nats.go
// reconnects every second (plus up to 1 s of jitter).
const settleWait = 5

// silentBeats is how many heartbeats a peer may miss before direct
// messages to members only on it are refused: it, or its path to NATS,
// may be down while this node's is not (a network cut, a frozen process),
// and what is published to it is lost. Three, not two: on this project's
// loaded 2-core machine a live node's heartbeats were seen 2.4 s apart
// (docs/HUB.md), and a refusal of a live peer's members is a false alarm
// their senders must retry.
const silentBeats = 3

// settling is a settling under way: since when (clk.now), and whether it
// follows the node's first connection.
type settling struct {
	from  time.Time
	first bool
}

// startSettle starts a settling: NATS has just come back (first: the
// node's first connection, which came from nats.go's retries).
func (n *Node) startSettle(first bool) {
	n.settling.Store(&settling{from: n.clk.now(), first: first})
}

// linked reports whether NATS is connected and settled: since it came
// back every peer this node knew has been heard, or settleWait
// heartbeats have passed. A message heard from a peer since came over
// this node's new connection, so the server had this node's
// subscriptions; and the peer published it after its own were in place
// (nats.go sends a connection's subscriptions again before anything else
// on it, and nothing is buffered), so what this node publishes from then
// on reaches it. After a first connection that came late (NATS was
// unreachable at the start) the node knows no peer yet, so hearing
// "every peer" proves nothing: it waits the whole bound, in which the
// peers whose links came back with the same server reconnect and say so.
func (n *Node) linked() bool {
	if !n.connected.Load() {
		return false
	}
	s := n.settling.Load()
	if s == nil {
		return true
	}
	if n.clk.now().Sub(s.from) < settleWait*n.opts.Heartbeat && (s.first || !n.tbl.heardAllSince(s.from)) {
		return false
	}
	n.settling.CompareAndSwap(s, nil)
	return true
}

// Linked implements hub.Fabric: a direct message to target published now
// reaches it. It does not while this node is not linked (NATS down, or
// back and settling), nor while every peer known to hold target has been
// silent for more than silentBeats heartbeats: such a peer's link may be
// down while this node's is up. A target known on no peer is relayed
// whatever (see Relay), and so is every target just after this node's
// own loop stalled (the others' heartbeats may wait unread). The cost is
// a map lookup per peer, under the table's read lock.
func (n *Node) Linked(target string) bool {
	if !n.linked() {
		return false
	}
	now := n.clk.now()
	return n.stalled(now) || n.tbl.reachable(target, now, silentBeats*n.opts.Heartbeat)
}

// Relay implements hub.Fabric. The message is published whatever this
// node knows of the target: a connection of it elsewhere may be newer
// than the news of it, and its login's reply promised it this message.
func (n *Node) Relay(m hub.Message) {
	e := n.newMsg(kindMessage, len(m.Body)+128)
	e.str(m.Sender)
	e.str(m.From)
	e.list(m.FromHomes)
	e.str(m.Target)
	e.str(m.Body)
	n.publish(n.subject("user", token(m.Target)), e.b)
	if n.RemoteConns(m.Sender) > 0 {
		// The sender's other hubs charge its budget too.
		s := n.newMsg(kindSpent, len(m.Sender)+16)
		s.str(m.Sender)
		s.num(0)
		s.num(uint64(len(m.Body)))
		n.publish(n.subject("user", token(m.Sender)), s.b)
	}
}

// Punt implements hub.Fabric. It goes to every node where the user may
// hold the session, whatever this node has heard of it: the hub calls it
// after Ready, so that of two logins of one session on two nodes at once
// at least one hears the other's punt, and the node holding the newer one
// tells the other to give way (see onUser).
func (n *Node) Punt(uid, sessid string, at int64) {
	e := n.newMsg(kindPunt, len(uid)+len(sessid)+32)
	e.str(n.id)
	e.str(uid)
	e.str(sessid)
	e.num(uint64(at))
	n.publish(n.subject("user", token(uid)), e.b)
}

// Remove implements hub.Fabric. It goes to every node, on the subject
// they all hear: a node where the user has no connection now must refuse
// its logins all the same. A node of a release before this kind ignores
// it (onNodes drops kinds it does not know): its connections of the user
// stay until they close, and the directory refuses the user's logins
// there.
func (n *Node) Remove(uid string) {
	e := n.plain(kindRemove)
	e.str(uid)
	n.publish(n.subject("nodes"), e.b)
}

// Unremove implements hub.Fabric. It goes to every node, as Remove does,
// and in order with it (one subject, one connection). A node of a release
// before this kind ignores it: it refuses the user's logins until its
// refusal ends by itself.
func (n *Node) Unremove(uid string) {
	e := n.plain(kindUnremove)
	e.str(uid)
	n.publish(n.subject("nodes"), e.b)
}

// Busy implements hub.Fabric.
func (n *Node) Busy(uid string) (homes []string, busy bool) { return n.tbl.busyAt(uid) }

// Admit implements hub.Fabric.
func (n *Node) Admit(ctx context.Context, uid string, homes []string, limit int) hub.Admission {
	if n.places == nil {
		return hub.Unavailable
	}
	return n.places.admit(ctx, uid, homes, limit)
}

// Release implements hub.Fabric.
func (n *Node) Release(uid string) {
	if n.places != nil {
		n.places.release(uid)
	}
}

// markBusy tells the others that uid's connections here have a quarter
// of their queues waiting, so that their members' direct messages to it
// are refused ("Recipient is busy") as they would be here, rather than
// dropped here when the queue is half full; pollBusy says when it is no
// longer so.
func (n *Node) markBusy(uid string, homes []string) {
	now := time.Now()
	n.busyMu.Lock()
	last, was := n.busyLocal[uid]
	if was && now.Sub(last) < busyRepeat {
		n.busyMu.Unlock()
		return
	}
	n.busyLocal[uid] = now
	n.busyMu.Unlock()
	n.publishBusy(uid, true, homes)
	if !was {
		select {
		case n.busyWake <- struct{}{}:
		default:
		}
	}
}

func (n *Node) publishBusy(uid string, busy bool, homes []string) {
	e := n.plain(kindBusy)
	e.str(uid)
	e.flag(busy)
	e.list(homes)
	n.publish(n.subject("nodes"), e.b)
}

// pollBusy checks the local users said to be busy: those that drained
// are said to be free, the others said busy again every busyRepeat. It
// reports whether any is still busy.
func (n *Node) pollBusy(now time.Time) bool {
	n.busyMu.Lock()
	users := make([]string, 0, len(n.busyLocal))
	for uid := range n.busyLocal {
		users = append(users, uid)
	}
	n.busyMu.Unlock()
	for _, uid := range users {
		homes, busy := n.local.Busy(uid)
		n.busyMu.Lock()
		last := n.busyLocal[uid]
		switch {
		case !busy:
			delete(n.busyLocal, uid)
		case now.Sub(last) >= busyRepeat:
			n.busyLocal[uid] = now
		default:
			n.busyMu.Unlock()
			continue
		}
		n.busyMu.Unlock()
		n.publishBusy(uid, busy, homes)
	}
	n.busyMu.Lock()
	defer n.busyMu.Unlock()
	return len(n.busyLocal) > 0
}

// --- messages from NATS ---

func (n *Node) onEvent(msg *nats.Msg) {
	kind, d, ok := n.open(msg)
	if !ok || kind != kindEvent {
		return
	}
	sender, channel, params := d.str(), d.str(), d.bytes()
	if d.err != nil {
		return
	}
	n.local.Event(sender, channel, params)
}

func (n *Node) onUser(msg *nats.Msg) {
	kind, d, ok := n.open(msg)
	if !ok {
		return
	}
	switch kind {
	case kindMessage:
		m := hub.Message{Sender: d.str(), From: d.str(), FromHomes: d.list(), Target: d.str(), Body: d.str()}
		if d.err != nil {
			return
		}
		n.local.Message(m)
		if homes, busy := n.local.Busy(m.Target); busy {
			n.markBusy(m.Target, homes)
		}
	case kindPunt:
		node, uid, sessid, stamp := d.str(), d.str(), d.str(), d.num()
		if d.err != nil {
			return
		}
		n.observe(stamp)
		// Logins are ordered by stamp, then by node id: every node
		// compares two logins the same way.
		older := func(at int64) bool {
			return uint64(at) < stamp || uint64(at) == stamp && n.id < node
		}
		if kept, held := n.local.Punt(uid, sessid, older); held {
			// This node holds the newer login: the other node must punt
			// its own, which it may not have heard of yet.
			n.Punt(uid, sessid, kept)
		}
	case kindSpent:
		uid, broadcast, size := d.str(), d.num(), d.num()
		if d.err == nil {
			n.local.Charge(uid, broadcast == 1, int(size))
		}
	case kindAskLevels:
		// Answered whatever this node has: the asker waits for it.
		node, nonce, uid := d.str(), d.num(), d.str()
		if d.err != nil || node == n.id || !safe(node) || uid == "" {
			return
		}
		l, known := n.local.Level(uid)
		n.publishLevels(n.subject("inbox", node), nonce, []levelNote{{uid: uid, known: known, level: l}})
	}
}

func (n *Node) onNodes(msg *nats.Msg) {
	kind, d, ok := n.open(msg)
	if !ok {
		return
	}
	from := d.str()
	if d.err != nil || from == n.id {
		return
	}
	var h heard
	now := n.clk.now()
	switch kind {
	case kindHeartbeat:
		seq, clock, vmin, vmax := d.num(), d.num(), d.num(), d.num()
		feats := d.more()
		if d.err != nil || vmin > 0xff || vmax > 0xff {
			return
		}
		n.observe(clock)
		h = n.tbl.heartbeat(from, seq, byte(vmin), byte(vmax), now)
		n.tbl.features(from, feats)
	case kindDelta:
		seq, clock := d.num(), d.num()
		m := getMember(&d)
		if d.err != nil {
			return
		}
		n.observe(clock)
		h = n.tbl.delta(from, seq, m, now)
	case kindDeltas:
		first, clock, count := d.num(), d.num(), d.num()
		if !checkMembers(&d, count) {
			return
		}
		n.observe(clock)
		// Each applied as read: no slice of them all.
		for i := range count {
			got := n.tbl.delta(from, first+i, getMember(&d), now)
			h.ask = h.ask || got.ask
			h.revive = h.revive || got.revive
			h.reported = h.reported || got.reported
			h.first = h.first || got.first
		}
	case kindBusy:
		uid, busy, homes := d.str(), d.flag(), d.list()
		if d.err == nil {
			n.tbl.setBusy(from, uid, busy, homes, now.Add(busyTTL))
		}
		return
	case kindBye:
		n.tbl.bye(from, now)
		n.log.Info("cluster: node left", "peer", from)
		return
	case kindLevels:
		n.onLevels(from, &d)
		return
	case kindRemove:
		uid := d.str()
		if d.err == nil && uid != "" {
			// Off this goroutine, as Gone is (the hub posts a disconnect
			// report, which may wait), and in order with Gone and Back: a
			// member removed before its node is heard again is not
			// given back.
			n.gone.do(func() { n.local.Remove(uid) })
		}
		return
	case kindUnremove:
		uid := d.str()
		if d.err == nil && uid != "" {
			// In order with the removals it may follow.
			n.gone.do(func() { n.local.Unremove(uid) })
		}
		return
	default:
		return // a kind this node does not know: a later addition to its version
	}
	if h.revive {
		level := slog.LevelDebug
		if h.first {
			level = slog.LevelWarn
		}
		n.log.Log(context.Background(), level, "cluster: a node taken for dead is heard again; asking it for its members", "peer", from)
		e := n.plain(kindRevive)
		e.flag(h.reported)
		if err := n.nc.PublishRequest(n.subject("node", from, "sync"), n.subject("inbox", n.id), e.b); err != nil {
			n.log.Debug("cluster: replay request", "peer", from, "err", err)
		}
	}
	if h.ask {
		e := n.plain(kindSync)
		if err := n.nc.PublishRequest(n.subject("node", from, "sync"), n.subject("inbox", n.id), e.b); err != nil {
			n.log.Debug("cluster: membership request", "peer", from, "err", err)
		}
	}
}

func (n *Node) onSyncRequest(msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	kind, d, ok := n.open(msg)
	if !ok {
		return
	}
	req := request{reply: msg.Reply, from: d.str()}
	switch kind {
	case kindSync:
	case kindRevive:
		req.revive, req.reported = true, d.flag()
	default:
		return
	}
	if d.err != nil {
		return
	}
	select {
	case n.reqs <- req:
	default: // busy: the asker asks again
	}
}

func (n *Node) onInbox(msg *nats.Msg) {
	kind, d, ok := n.open(msg)
	if !ok {
		return
	}
	switch kind {
	case kindSnapshot:
		from, seq, part, last, count := d.str(), d.num(), d.num(), d.flag(), d.num()
		members := getMembers(&d, count)
		if d.err != nil {
			return
		}
		n.tbl.snapshot(from, seq, part, last, members, n.clk.now())
	case kindLevels:
		from := d.str()
		if d.err == nil {
			n.onLevels(from, &d)
		}
	case kindReplay:
		// Nothing is sized from a count the message claims: each is
		// bounded by what the bytes left can hold, and the slice and the
		// maps grow with what is really there.
		from, _, last, count := d.str(), d.num(), d.flag(), d.num()
		if d.err != nil || count > uint64(len(d.b))/(minMemberBytes+1) {
			return
		}
		var members []hub.Member
		anns := make(map[string]map[string][]byte)
		for range count {
			m := getMember(&d)
			k := d.num()
			if d.err != nil || k > uint64(len(d.b))/2 { // a channel and params take a byte each at least
				return
			}
			for range k {
				ch, p := d.str(), d.bytes()
				if d.err != nil {
					return
				}
				if anns[m.UID] == nil {
					anns[m.UID] = make(map[string][]byte)
				}
				anns[m.UID][ch] = bytes.Clone(p)
			}
			members = append(members, m)
		}
		if d.err != nil {
			return
		}
		back, reported := n.tbl.replayed(from, members, last)
		if len(back) == 0 {
			return
		}
		n.log.Info("cluster: members of a node taken for dead are back", "peer", from, "members", len(back))
		n.gone.do(func() {
			for _, m := range back {
				n.local.Back(m, anns[m.UID], reported)
			}
		})
	}
}

// alive reports whether node is this one or a live peer.
func (n *Node) alive(node string) bool {
	if node == n.id {
		return true
	}
	n.tbl.mu.RLock()
	defer n.tbl.mu.RUnlock()
	_, ok := n.tbl.peers[node]
	return ok
}

// --- budget levels ---

// levelWait is how long a member that arrived here while on other nodes
// waits, at most, for their budget levels before it spends here (the
// answers come within milliseconds; this bounds a stalled node's cost).
const levelWait = time.Second

// levelAsk is a request for budget levels under way: the nodes that
// have not answered yet, and until when they are awaited.
type levelAsk struct {
	nonce uint64
	peers map[string]bool
	until time.Time
}

// levelNote is a member's level on the wire; known is false when the
// node has none (no budgets, or full ones).
type levelNote struct {
	uid   string
	known bool
	level hub.Level
}

// minLevelBytes is the least a level note takes on the wire: two bytes
// for its uid (never empty), one for each of its other three fields.
const minLevelBytes = 5

// publishLevels sends notes to subject, in parts of about snapshotBytes;
// nonce is the request answered (0: none).
func (n *Node) publishLevels(subject string, nonce uint64, notes []levelNote) {
	var body enc
	count := 0
	emit := func() {
		e := n.newMsg(kindLevels, len(body.b)+32)
		e.str(n.id)
		e.num(nonce)
		e.num(uint64(count))
		e.b = append(e.b, body.b...)
		n.publish(subject, e.b)
		body.b, count = body.b[:0], 0
	}
	for _, l := range notes {
		body.str(l.uid)
		body.flag(l.known)
		body.tokens(l.level.Broadcast)
		body.tokens(l.level.Message)
		if count++; len(body.b) >= snapshotBytes {
			emit()
		}
	}
	if count > 0 {
		emit()
	}
}

// askLevels asks the nodes where each of the members that have just
// arrived here still is (as far as this node knows) for what is left of
// its budgets, and holds its spending here until they answered: it may
// have spent them there a moment ago, and a hub refills a bucket while
// its member is away. The hub's reply to the login waits for this (Ready
// flushes), so the member's first request finds the hold in place.
func (n *Node) askLevels(arrived []string) {
	if len(arrived) == 0 || !n.connected.Load() {
		return
	}
	for _, uid := range arrived {
		peers := n.tbl.holders(uid)
		if len(peers) == 0 {
			continue
		}
		w := &levelAsk{peers: make(map[string]bool, len(peers)), until: time.Now().Add(levelWait)}
		for _, id := range peers {
			w.peers[id] = true
		}
		// Held before the answers can come.
		n.local.Hold(uid, levelWait)
		n.levelMu.Lock()
		n.nonce++
		w.nonce = n.nonce
		n.waits[uid] = w
		n.levelMu.Unlock()
		e := n.newMsg(kindAskLevels, len(n.id)+len(uid)+16)
		e.str(n.id)
		e.num(w.nonce)
		e.str(uid)
		n.publish(n.subject("user", token(uid)), e.b)
	}
}

// onLevels adopts the levels a node sent (the members who left it, or an
// answer to this node's request) and ends the holds they complete.
func (n *Node) onLevels(from string, d *dec) {
	nonce, count := d.num(), d.num()
	if d.err != nil || count > uint64(len(d.b))/minLevelBytes {
		return
	}
	// Each applied as read: nothing is made for the count claimed.
	for range count {
		uid, known := d.str(), d.flag()
		l := hub.Level{Broadcast: d.tokens(), Message: d.tokens()}
		if d.err != nil || uid == "" {
			return
		}
		if known {
			n.local.Adopt(uid, l)
		}
		n.heardLevel(from, nonce, uid)
	}
}

// heardLevel records that node from gave uid's level, in answer to the
// request nonce (0: as the member left it, which is as good).
func (n *Node) heardLevel(from string, nonce uint64, uid string) {
	n.levelMu.Lock()
	w := n.waits[uid]
	if w == nil || nonce != 0 && nonce != w.nonce || !w.peers[from] {
		n.levelMu.Unlock()
		return
	}
	delete(w.peers, from)
	done := len(w.peers) == 0
	if done {
		delete(n.waits, uid)
	}
	n.levelMu.Unlock()
	if done {
		n.local.Settle(uid)
	}
}

// expireWaits gives up the requests for levels that were not answered in
// time (a node stalled or gone): the member spends what this node knows.
func (n *Node) expireWaits(now time.Time) {
	n.levelMu.Lock()
	var late []string
	for uid, w := range n.waits {
		if now.After(w.until) {
			late = append(late, uid)
			delete(n.waits, uid)
		}
	}
	n.levelMu.Unlock()
	for _, uid := range late {
		n.levelsLate.Add(1)
		n.local.Settle(uid)
	}
	if len(late) > 0 {
		n.log.Debug("cluster: budget levels not given in time", "members", len(late))
	}
}

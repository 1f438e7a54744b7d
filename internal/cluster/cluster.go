// Package cluster joins the embedded Verto hubs of several channels
// processes into one over NATS (core publish/subscribe; JetStream only for
// the per-channel client count): a Node implements hub.Fabric.
//
// Each process is a node with a random id. Broadcasts travel on a subject
// per event channel, which a node listens to while it has local
// subscribers there; direct messages, takeovers and budget notes on a
// subject per user, which a node listens to while the user has
// connections on it. Every node announces, on one subject, each change of
// its members (users with live connections) with a sequence number, and a
// heartbeat every second carrying the latest number; a node that misses a
// change asks for the whole membership again. A node silent for Expiry is
// dead: its members vanish, and each other node delivers to its own
// subscribers the leave events those members could not send. docs/HUB.md
// has the subjects, the guarantees and every fault.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
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
	// for dead. Default 3 heartbeats.
	Expiry time.Duration
	// Places makes Admit count clients per channel over the cluster, in a
	// JetStream key-value bucket (the server must run with JetStream).
	// Without it Admit answers Unavailable and each hub counts its own.
	Places bool
}

// DefaultPrefix is the subject root when Options.Prefix is empty.
const DefaultPrefix = "channels"

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

	mu        sync.Mutex // guards what the hub reports, until the loop takes it
	subCount  map[string]int
	subDirty  map[string]struct{}
	userWant  map[string]bool
	userDirty map[string]struct{}
	deltas    []hub.Member // Conns 0: left
	wake      chan struct{}

	// owned by loop
	evSubs   map[string]*nats.Subscription
	userSubs map[string]*nats.Subscription
	userIdle map[string]time.Time // users gone from here whose subject we still hear
	members  map[string]hub.Member
	seq      uint64
	buf      enc // membership changes are encoded here

	syncReqs    chan string // reply subjects of membership requests
	reconnected chan struct{}
	started     time.Time
	graceUntil  atomic.Int64           // UnixNano before which nobody expires
	lastErr     atomic.Pointer[string] // of the latest failed attempt to connect
	disconnects atomic.Uint64
	reconnects  atomic.Uint64
	deadNodes   atomic.Uint64

	startOnce sync.Once
	stop      context.CancelFunc
	ctx       context.Context
	done      chan struct{}
	closeOnce sync.Once
}

// New connects to NATS and returns a Node. It does not wait for NATS: a
// server that cannot be reached is logged and retried forever, and
// cross-process traffic waits for it.
func New(opts Options) (*Node, error) {
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
		opts.Expiry = opts.Heartbeat * 3
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithCancel(context.Background())
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
		syncReqs:    make(chan string, 64),
		reconnected: make(chan struct{}, 1),
		started:     time.Now(),
		ctx:         ctx,
		stop:        cancel,
		done:        make(chan struct{}),
	}
	n.tbl.init()
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
		nats.ReconnectBufSize(4<<20),
		nats.ConnectHandler(func(*nats.Conn) {
			n.log.Info("cluster: connected to NATS", "url", where)
			n.signalReconnect()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if n.ctx.Err() != nil {
				return // Close
			}
			n.disconnects.Add(1)
			n.log.Warn("cluster: lost the connection to NATS; cross-process traffic waits", "url", where, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.reconnects.Add(1)
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
		nats.ClosedHandler(func(*nats.Conn) { n.log.Debug("cluster: NATS connection closed") }),
	)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cluster: connect to %s: %w", where, err)
	}
	n.nc = nc
	if !nc.IsConnected() {
		n.log.Warn("cluster: NATS not reachable; retrying every second, each process serves its own connections meanwhile", "url", where)
	}
	if opts.Places {
		n.places = newPlaces(n)
	}
	return n, nil
}

// ID is the node's id.
func (n *Node) ID() string { return n.id }

// Stats reports the node's counters.
func (n *Node) Stats() Stats {
	s := n.nc.Stats()
	peers := int(n.tbl.npeers.Load())
	return Stats{
		Connected:   n.nc.IsConnected(),
		Disconnects: n.disconnects.Load(),
		Reconnects:  n.reconnects.Load(),
		InMsgs:      s.InMsgs,
		OutMsgs:     s.OutMsgs,
		DeadNodes:   n.deadNodes.Load(),
		Nodes:       peers,
	}
}

func (n *Node) signalReconnect() {
	// Others' silence while we were away proves nothing: no expiry for a
	// while.
	n.graceUntil.Store(time.Now().Add(n.opts.Expiry).UnixNano())
	select {
	case n.reconnected <- struct{}{}:
	default:
	}
}

func (n *Node) subject(parts ...string) string {
	return n.root + "." + strings.Join(parts, ".")
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
		if n.nc.IsConnected() {
			_ = n.nc.FlushTimeout(2 * time.Second)
		}
		n.nc.Close()
	})
	return nil
}

// loop publishes what the hub reported, in order, keeps the NATS
// subscriptions in step with the local subscribers and members, sends
// heartbeats, answers membership requests and finds dead nodes.
func (n *Node) loop() {
	defer close(n.done)
	tick := time.NewTicker(n.opts.Heartbeat)
	defer tick.Stop()
	n.heartbeat()
	sweep := time.NewTicker(15 * time.Second)
	defer sweep.Stop()
	check := time.NewTicker(n.opts.Heartbeat / 4)
	defer check.Stop()
	sweeps := 0
	// A burst of changes (a wave of logins) goes out in few messages: a
	// change within flushGap of the last flush waits for the rest.
	var lastFlush time.Time
	gap := time.NewTimer(flushGap)
	gap.Stop()
	gapArmed := false
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
		case reply := <-n.syncReqs:
			n.flushLocal()
			n.sendSnapshot(reply)
		case <-n.reconnected:
			n.flushLocal()
			n.heartbeat()
			if n.places != nil {
				n.places.spawn(func() { n.places.ready(true) })
			}
		case now := <-tick.C:
			n.flushLocal()
			n.heartbeat()
			for uid, since := range n.userIdle {
				if now.Sub(since) > userLinger {
					n.follow(n.userSubs, uid, "", false, nil)
					delete(n.userIdle, uid)
				}
			}
		case now := <-check.C:
			n.expire(now)
		case <-sweep.C:
			// Every 15 s the writes that failed; every minute the leader
			// also clears what dead nodes left in every channel.
			sweeps++
			if n.places != nil {
				leader := n.isLeader() && sweeps%4 == 0 && time.Since(n.started) > 2*n.opts.Expiry
				n.places.spawn(func() { n.places.sweep(leader, false) })
			}
		}
	}
}

func (n *Node) plain(kind byte) *enc {
	e := newEnc(kind, 32)
	e.str(n.id)
	return e
}

func (n *Node) publish(subject string, data []byte) {
	if err := n.nc.Publish(subject, data); err != nil {
		n.log.Debug("cluster: publish", "subject", subject, "err", err)
	}
}

func (n *Node) heartbeat() {
	e := n.plain(kindHeartbeat)
	e.num(n.seq)
	n.publish(n.subject("nodes"), e.b)
}

// flushLocal applies what the hub reported since the last call:
// subscriptions, then membership changes.
func (n *Node) flushLocal() {
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
	if !alone {
		deltas = latestPerUser(deltas)
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
			e.b = append(e.b[:0], kindDelta)
			e.str(n.id)
			e.num(first)
		} else {
			e.b = append(e.b[:0], kindDeltas)
			e.str(n.id)
			e.num(first)
			e.num(uint64(count))
		}
		e.b = append(e.b, body.b...)
		n.publish(subject, e.b)
		deltas, first = deltas[count:], first+uint64(count)
	}
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

// follow subscribes to or unsubscribes from subject.
func (n *Node) follow(subs map[string]*nats.Subscription, key, subject string, want bool, fn nats.MsgHandler) {
	s := subs[key]
	switch {
	case want && s == nil:
		s, err := n.nc.Subscribe(subject, fn)
		if err != nil {
			n.log.Warn("cluster: subscribe", "subject", subject, "err", err)
			return
		}
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

func getMember(d *dec) hub.Member {
	return hub.Member{UID: d.str(), Homes: d.list(), Addr: d.str(), Conns: int(d.num())}
}

// flushGap is the least time between two flushes of what the hub
// reported, unless a heartbeat or a membership request comes between: a
// change waits at most this long.
const flushGap = 2 * time.Millisecond

// userLinger is how long a node keeps listening to a user's subject
// after the user's last connection here closed.
const userLinger = 30 * time.Second

// snapshotBytes bounds one message of a membership answer (NATS's default
// maximum payload is 1 MiB).
const snapshotBytes = 256 << 10

func (n *Node) sendSnapshot(reply string) {
	part := uint64(0)
	start := func() *enc {
		e := n.plain(kindSnapshot)
		e.num(n.seq)
		e.num(part)
		return e
	}
	e := start()
	var body enc
	count := 0
	emit := func(last bool) {
		if last {
			e.num(1)
		} else {
			e.num(0)
		}
		e.num(uint64(count))
		e.b = append(e.b, body.b...)
		n.publish(reply, e.b)
		part++
		body.b, count = body.b[:0], 0
		e = start()
	}
	for _, m := range n.members {
		putMember(&body, m)
		count++
		if len(body.b) > snapshotBytes {
			emit(false)
		}
	}
	emit(true)
}

// expire takes nodes silent for Expiry for dead, unless this node cannot
// hear anybody itself.
func (n *Node) expire(now time.Time) {
	if !n.nc.IsConnected() || now.UnixNano() < n.graceUntil.Load() {
		return
	}
	dead, members, gone := n.tbl.expire(now, n.opts.Expiry)
	if len(dead) == 0 {
		return
	}
	leader := n.isLeader()
	for _, id := range dead {
		n.deadNodes.Add(1)
		n.log.Warn("cluster: node silent, taken for dead", "dead", id, "members", len(members[id]))
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
	go func() {
		for _, m := range left {
			n.local.Gone(m, leader)
		}
	}()
}

// isLeader reports whether this node has the smallest id among the live
// ones: it alone reports the disconnects of a dead node's members and
// cleans the counts.
func (n *Node) isLeader() bool {
	n.tbl.mu.RLock()
	defer n.tbl.mu.RUnlock()
	for id := range n.tbl.peers {
		if id < n.id {
			return false
		}
	}
	return true
}

// --- hub.Fabric, called by the hub ---

func (n *Node) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
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
	n.mu.Unlock()
	n.signal()
}

// UserLeft implements hub.Fabric.
func (n *Node) UserLeft(uid string) {
	n.mu.Lock()
	n.deltas = append(n.deltas, hub.Member{UID: uid})
	n.userWant[uid] = false
	n.userDirty[uid] = struct{}{}
	n.mu.Unlock()
	n.signal()
}

// Subscribed implements hub.Fabric.
func (n *Node) Subscribed(channel string) { n.countSub(channel, 1) }

// Unsubscribed implements hub.Fabric.
func (n *Node) Unsubscribed(channel string) { n.countSub(channel, -1) }

func (n *Node) countSub(channel string, d int) {
	tok := token(mainChannel(channel))
	n.mu.Lock()
	before := n.subCount[tok]
	n.subCount[tok] = before + d
	changed := (before > 0) != (before+d > 0)
	if changed {
		n.subDirty[tok] = struct{}{}
	}
	n.mu.Unlock()
	if changed {
		n.signal()
	}
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

// Broadcast implements hub.Fabric.
func (n *Node) Broadcast(sender, channel string, params []byte) {
	e := newEnc(kindEvent, len(sender)+len(channel)+len(params))
	e.str(sender)
	e.str(channel)
	e.bytes(params)
	n.publish(n.subject("ev", token(mainChannel(channel))), e.b)
}

// Relay implements hub.Fabric.
func (n *Node) Relay(m hub.Message) {
	e := newEnc(kindMessage, len(m.Body)+128)
	e.str(m.Sender)
	e.str(m.From)
	e.list(m.FromHomes)
	e.str(m.Target)
	e.str(m.Body)
	n.publish(n.subject("user", token(m.Target)), e.b)
	if n.RemoteConns(m.Sender) > 0 {
		// The sender's other hubs charge its budget too.
		s := newEnc(kindSpent, len(m.Sender)+16)
		s.str(m.Sender)
		s.num(0)
		s.num(uint64(len(m.Body)))
		n.publish(n.subject("user", token(m.Sender)), s.b)
	}
}

// Punt implements hub.Fabric. Only a user known to have connections on
// another node can hold a session there: a browser tab's reconnect lands
// long after its old connection was announced.
func (n *Node) Punt(uid, sessid string, at time.Time) {
	if n.RemoteConns(uid) == 0 {
		return
	}
	e := newEnc(kindPunt, len(uid)+len(sessid)+16)
	e.str(uid)
	e.str(sessid)
	e.num(uint64(at.UnixNano()))
	n.publish(n.subject("user", token(uid)), e.b)
}

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

// --- messages from NATS ---

func (n *Node) onEvent(msg *nats.Msg) {
	d := dec{b: msg.Data}
	if len(d.b) == 0 || d.b[0] != kindEvent {
		return
	}
	d.b = d.b[1:]
	sender, channel, params := d.str(), d.str(), d.bytes()
	if d.err != nil {
		return
	}
	n.local.Event(sender, channel, params)
}

func (n *Node) onUser(msg *nats.Msg) {
	d := dec{b: msg.Data}
	if len(d.b) == 0 {
		return
	}
	kind := d.b[0]
	d.b = d.b[1:]
	switch kind {
	case kindMessage:
		m := hub.Message{Sender: d.str(), From: d.str(), FromHomes: d.list(), Target: d.str(), Body: d.str()}
		if d.err == nil {
			n.local.Message(m)
		}
	case kindPunt:
		uid, sessid, at := d.str(), d.str(), d.num()
		if d.err == nil {
			n.local.Punt(uid, sessid, time.Unix(0, int64(at)))
		}
	case kindSpent:
		uid, broadcast, size := d.str(), d.num(), d.num()
		if d.err == nil {
			n.local.Charge(uid, broadcast == 1, int(size))
		}
	}
}

func (n *Node) onNodes(msg *nats.Msg) {
	d := dec{b: msg.Data}
	if len(d.b) == 0 {
		return
	}
	kind := d.b[0]
	d.b = d.b[1:]
	from := d.str()
	if d.err != nil || from == n.id {
		return
	}
	var ask bool
	switch kind {
	case kindHeartbeat:
		seq := d.num()
		if d.err == nil {
			ask = n.tbl.heartbeat(from, seq, time.Now())
		}
	case kindDelta:
		seq := d.num()
		m := getMember(&d)
		if d.err == nil {
			ask = n.tbl.delta(from, seq, m, time.Now())
		}
	case kindDeltas:
		first, count := d.num(), d.num()
		if d.err != nil || count > uint64(len(d.b)) { // each takes bytes
			return
		}
		members := make([]hub.Member, 0, count)
		for range count {
			members = append(members, getMember(&d))
		}
		if d.err != nil {
			return
		}
		now := time.Now()
		for i, m := range members {
			if n.tbl.delta(from, first+uint64(i), m, now) {
				ask = true
			}
		}
	case kindBye:
		n.tbl.bye(from)
		n.log.Info("cluster: node left", "peer", from)
	}
	if ask {
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
	select {
	case n.syncReqs <- msg.Reply:
	default: // busy: the asker asks again
	}
}

func (n *Node) onInbox(msg *nats.Msg) {
	d := dec{b: msg.Data}
	if len(d.b) == 0 || d.b[0] != kindSnapshot {
		return
	}
	d.b = d.b[1:]
	from, seq, part, last, count := d.str(), d.num(), d.num(), d.num(), d.num()
	if d.err != nil || count > uint64(len(d.b)) {
		return
	}
	members := make([]hub.Member, 0, count)
	for range count {
		members = append(members, getMember(&d))
	}
	if d.err != nil {
		return
	}
	n.tbl.snapshot(from, seq, part, last == 1, members, time.Now())
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

package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"channels/internal/cluster"
	"channels/internal/cluster/clustertest"
	"channels/internal/hub"
)

// stallProxy stands between a node and NATS. stall makes it stop reading
// what the node writes (a NATS server or network that stopped taking
// data), so that the node's writes fill the socket and block; blackhole
// stops it forwarding both ways, closing nothing (a network path gone
// silent, a frozen host): neither end notices anything until its pings
// go unanswered. refuse makes it close the connections it accepts from
// then on (NATS unreachable for that node alone).
type stallProxy struct {
	addr    string
	mu      sync.Mutex
	out     chan struct{} // node → NATS: non-nil while stalled
	in      chan struct{} // NATS → node: non-nil while stalled
	refused bool
	conns   []net.Conn
}

func newStallProxy(t *testing.T, natsURL string) *stallProxy {
	t.Helper()
	u, err := url.Parse(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{addr: ln.Addr().String()}
	// pump copies from src to dst, waiting at gate before each read, and
	// before writing what a read begun before the gate closed returned.
	pump := func(dst, src net.Conn, gate func() chan struct{}) {
		defer dst.Close()
		buf := make([]byte, 32<<10)
		wait := func() {
			if g := gate(); g != nil {
				<-g
			}
		}
		for {
			wait()
			n, err := src.Read(buf)
			wait()
			if n > 0 {
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			refused := p.refused
			p.mu.Unlock()
			if refused {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", u.Host)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go pump(c, s, func() chan struct{} { p.mu.Lock(); defer p.mu.Unlock(); return p.in })
			go pump(s, c, func() chan struct{} { p.mu.Lock(); defer p.mu.Unlock(); return p.out })
		}
	}()
	t.Cleanup(func() {
		p.unstall()
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

// stall stops the node's writes reaching NATS.
func (p *stallProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		p.out = make(chan struct{})
	}
}

// blackhole stops the proxy forwarding anything, either way.
func (p *stallProxy) blackhole() {
	p.stall()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.in == nil {
		p.in = make(chan struct{})
	}
}

// unstall forwards again, both ways, what was held first.
func (p *stallProxy) unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range []*chan struct{}{&p.out, &p.in} {
		if *g != nil {
			close(*g)
			*g = nil
		}
	}
}

// refuse makes the proxy close (on) or forward (off) the connections it
// accepts from now on.
func (p *stallProxy) refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused = on
}

// signalWriter is a log that closes seen when a line contains want.
type signalWriter struct {
	want string
	seen chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(w.want)) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// stalledNode starts a node behind a proxy, then stalls the proxy and
// publishes until a publish blocks on the full socket (holding nats.go's
// connection lock, as a broadcast into a stalled NATS does). The
// publisher stops and the proxy resumes at the test's end.
func stalledNode(t *testing.T, opts cluster.Options, setup func(*cluster.Node)) (n *cluster.Node, p *stallProxy, prefix string) {
	t.Helper()
	p = newStallProxy(t, clustertest.NATS(t))
	opts.URL = "nats://" + p.addr
	opts.Prefix = clustertest.Prefix("stall")
	n, err := cluster.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	n.Start(quietLocal{})
	t.Cleanup(func() {
		p.unstall()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	n.Subscribed("room")
	if err := n.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(n)
	}
	p.stall()
	big := []byte(`{"eventData":"` + strings.Repeat("x", 256<<10) + `"}`)
	var since atomic.Int64 // when the publish under way started; 0: none
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			since.Store(time.Now().UnixNano())
			n.Broadcast("filler@d", "room", big)
			since.Store(0)
		}
	}()
	t.Cleanup(func() { p.unstall(); close(stop); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if s := since.Load(); s != 0 && time.Since(time.Unix(0, s)) > 200*time.Millisecond {
			return n, p, opts.Prefix
		}
		if time.Now().After(deadline) {
			t.Fatal("no publish blocked on the stalled socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReadyStalledNATS: while a publish is stuck writing to a socket NATS
// stopped reading, Ready (a login's or subscription's reply waits for it)
// returns when its context ends, and counts it; before, it waited for the
// connection's lock, held by the publish for up to nats.go's write
// timeout (a minute).
func TestReadyStalledNATS(t *testing.T) {
	n, p, _ := stalledNode(t, cluster.Options{}, nil)
	n.Subscribed("other") // a new subscription: the round trip is needed
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	got := make(chan error, 1)
	go func() { got <- n.Ready(ctx) }()
	select {
	case err := <-got:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Ready: %v, want its deadline", err)
		}
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Errorf("Ready took %v with a 300 ms deadline", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ready held past its deadline by 5 s: it waits for the stalled connection")
	}
	p.unstall()
	if late := n.Stats().ReadyLate; late != 1 {
		t.Errorf("%d late replies counted, want 1", late)
	}
}

// TestReplayStalledNATS: a node answering a replay request while NATS has
// stopped reading does not hold the lock the hub takes under its registry
// lock (UserChanged, UserLeft, Subscribed…): logins, closes and
// subscriptions go on.
func TestReplayStalledNATS(t *testing.T) {
	log := &signalWriter{want: "giving its members back", seen: make(chan struct{})}
	opts := cluster.Options{
		Logger:   slog.New(slog.NewTextHandler(log, nil)),
		Presence: func([]byte) cluster.Presence { return cluster.Announce },
	}
	// A member that announced itself: the replay has something to send.
	n, _, prefix := stalledNode(t, opts, func(n *cluster.Node) {
		n.UserChanged(hub.Member{UID: "m@d", Homes: []string{"room"}, Conns: 1})
		if err := n.Ready(t.Context()); err != nil {
			t.Fatal(err)
		}
		n.Broadcast("m@d", "room", []byte(`{"eventData":"here"}`))
	})
	// Another node that had taken this one for dead asks for its members.
	asker, err := nats.Connect(clustertest.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer asker.Close()
	if err := asker.PublishRequest(prefix+".node."+n.ID()+".sync", prefix+".inbox.asker", cluster.Encode(1, cluster.KindRevive, "asker", uint64(1))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-log.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the replay did not start")
	}
	// The replay is under way, its publish stuck: the hub's calls go on.
	calls := make(chan int, 1)
	go func() {
		i := 0
		for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); i++ {
			n.UserChanged(hub.Member{UID: "other@d", Conns: 1})
			n.Subscribed("room3")
			n.Unsubscribed("room3")
			n.UserLeft("other@d")
		}
		calls <- i
	}()
	select {
	case i := <-calls:
		t.Logf("%d rounds of hub calls during the stalled replay", i)
	case <-time.After(5 * time.Second):
		t.Fatal("the hub's calls are held by a replay publishing to a stalled NATS")
	}
}

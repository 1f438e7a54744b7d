// Package connlimit caps the TCP connections an HTTP server holds open, so
// that no single address, and no crowd of them, can use up the process's
// file descriptors: a client that opens sockets and then trickles request
// bodies would otherwise hold one descriptor per socket until the process
// can no longer accept anyone.
//
// Listener wraps a net.Listener with two caps, checked at accept: open
// connections per remote address (IPv4 address, or IPv6 /64, since one
// host usually owns a whole /64) and open connections in total. A
// connection over either cap is closed at once, before a byte is read, so
// it costs a descriptor for microseconds. The caps count TCP peers: behind
// a reverse proxy every connection comes from the proxy, so proxies are
// listed in Options.Exempt (they then count only toward the total) and the
// per-client cap belongs in the proxy.
//
// The caps bound how many connections are open, not for how long; the
// http.Server's timeouts bound that.
package connlimit

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"channels/internal/forwarded"
)

// Defaults of Options.
const (
	// DefaultMaxPerAddr leaves room for offices behind one NAT address and
	// stays above the embedded Verto hub's 256 WebSockets per address, so
	// a full set of WebSockets still leaves page loads room.
	DefaultMaxPerAddr = 512
	// fdShare is the share of RLIMIT_NOFILE that DefaultMaxTotal gives to
	// client connections; the rest is for database connections, files
	// and the connections over the cap, each open until it is closed.
	fdShare = 0.75
	// minTotal is the floor of DefaultMaxTotal when the limit is tiny.
	minTotal = 64
	// logEvery is how often refused connections are reported, at most.
	logEvery = 10 * time.Second
)

// DefaultMaxTotal is three quarters of the process's descriptor limit
// (RLIMIT_NOFILE, which the Go runtime raises to its hard limit at start),
// or 4096 where the limit cannot be read.
func DefaultMaxTotal() int {
	n, ok := nofile()
	if !ok {
		return 4096
	}
	return max(int(min(float64(n)*fdShare, 1<<20)), minTotal)
}

// Options configure a Listener. Zero values take the defaults.
type Options struct {
	// MaxPerAddr caps the open connections of one remote address (one
	// IPv6 /64). Default DefaultMaxPerAddr; negative means no cap.
	MaxPerAddr int
	// MaxTotal caps all open connections. Default DefaultMaxTotal();
	// negative means no cap.
	MaxTotal int
	// Exempt lists peers that MaxPerAddr does not apply to: trusted
	// reverse proxies, which carry many clients' connections.
	Exempt []netip.Prefix
	// Logger receives a summary of refused connections, at most every
	// ten seconds; nil discards it.
	Logger *slog.Logger
}

// Listener is a net.Listener that refuses connections over its caps. It is
// safe for concurrent use.
type Listener struct {
	net.Listener
	opts Options
	now  func() time.Time

	mu      sync.Mutex
	total   int
	perAddr map[netip.Addr]int
	// Refusals since the last report, and when that was.
	refusedAddr, refusedTotal int
	lastLog                   time.Time
}

// New wraps ln.
func New(ln net.Listener, opts Options) *Listener {
	if opts.MaxPerAddr == 0 {
		opts.MaxPerAddr = DefaultMaxPerAddr
	}
	if opts.MaxTotal == 0 {
		opts.MaxTotal = DefaultMaxTotal()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: ln, opts: opts, now: time.Now, perAddr: make(map[netip.Addr]int)}
}

// Options returns the options in effect, defaults filled in.
func (l *Listener) Options() Options { return l.opts }

// Open returns the number of open connections in total and of addr (an
// address as the per-address cap keys it: IPv6 masked to its /64).
func (l *Listener) Open(addr netip.Addr) (total, perAddr int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.perAddr[forwarded.LimitAddr(addr)]
}

// Accept returns the next connection within the caps, closing those over
// them.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr, ok := peer(c)
		exempt := !ok || l.exempt(addr)
		if l.admit(addr, exempt) {
			return &conn{Conn: c, l: l, addr: addr, exempt: exempt}, nil
		}
		// The error of Close is of no interest: the peer is turned away.
		_ = c.Close()
	}
}

// admit counts a new connection from addr if the caps allow it.
func (l *Listener) admit(addr netip.Addr, exempt bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := forwarded.LimitAddr(addr)
	switch {
	case l.opts.MaxTotal > 0 && l.total >= l.opts.MaxTotal:
		l.refusedTotal++
	case !exempt && l.opts.MaxPerAddr > 0 && l.perAddr[k] >= l.opts.MaxPerAddr:
		l.refusedAddr++
	default:
		l.total++
		if !exempt {
			l.perAddr[k]++
		}
		return true
	}
	if now := l.now(); now.Sub(l.lastLog) >= logEvery {
		l.opts.Logger.Warn("connections refused at accept",
			"over_per_address_cap", l.refusedAddr, "over_total_cap", l.refusedTotal,
			"last_addr", addr.String(), "max_per_addr", l.opts.MaxPerAddr, "max_total", l.opts.MaxTotal)
		l.refusedAddr, l.refusedTotal, l.lastLog = 0, 0, now
	}
	return false
}

func (l *Listener) release(addr netip.Addr, exempt bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if exempt {
		return
	}
	k := forwarded.LimitAddr(addr)
	if l.perAddr[k] <= 1 {
		delete(l.perAddr, k)
	} else {
		l.perAddr[k]--
	}
}

func (l *Listener) exempt(a netip.Addr) bool {
	for _, p := range l.opts.Exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// conn releases its place once, on its first Close (net/http may close a
// connection more than once; a hijacked one is closed by its new owner).
type conn struct {
	net.Conn
	l      *Listener
	addr   netip.Addr
	exempt bool
	once   sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr, c.exempt) })
	return err
}

// NetConn returns the connection beneath, as tls.Conn does, so that its
// owner can tune the socket (the hub sets a WebSocket's send buffer).
func (c *conn) NetConn() net.Conn { return c.Conn }

// peer is the remote address of c, unmapped from IPv4-in-IPv6.
func peer(c net.Conn) (netip.Addr, bool) {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a := ta.AddrPort().Addr().Unmap()
		return a, a.IsValid()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

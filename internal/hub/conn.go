package hub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"channels/internal/forwarded"
	"channels/internal/metrics"
)

// conn is one WebSocket client: an actor made of a reader goroutine, a
// writer goroutine draining a bounded queue, and the loop (run) that owns
// every field below marked loop-owned. Other goroutines only queue frames
// (enqueue, never blocking) or ask it to stop.
type conn struct {
	h    *Hub
	ws   *websocket.Conn // nil when the dispatcher is driven directly (tests, fuzzing)
	addr string          // remote "ip:port", reported as mod_verto's client address

	ctx    context.Context
	cancel context.CancelFunc
	in     chan []byte // frames read, to the loop
	out    outQueue    // frames to write; the zero frame closes the socket

	writeSince atomic.Int64 // UnixNano when the current write began; 0 between writes
	stopOnce   sync.Once
	stopping   atomic.Bool
	closeCode  atomic.Int32
	closeWhy   string // the close frame's reason; set with closeCode, before the close marker is queued
	readerDone chan struct{}
	writerDone chan struct{}

	rs regState // owned by the registry, under registry.mu

	// loop-owned
	authed bool
	id     string // user id (login name)
	uid    string // id@domain
	sessid string
	perms  permissions
	ready  bool     // verto.clientReady sent
	after  []func() // actions run once the current frame's reply is queued

	limit   *rate.Limiter // request budget; a batch item counts one
	addrKey string        // the address whose byte budget its frames spend (forwarded.LimitKey)
}

func newConn(h *Hub, ws *websocket.Conn, addr string) *conn {
	ctx, cancel := context.WithCancel(h.root)
	return &conn{
		h:          h,
		ws:         ws,
		addr:       addr,
		addrKey:    forwarded.LimitKey(addr),
		ctx:        ctx,
		cancel:     cancel,
		in:         make(chan []byte),
		out:        outQueue{max: h.opts.QueueSize, maxBytes: h.opts.QueueBytes, total: &h.queued, ready: make(chan struct{}, 1)},
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		limit:      rate.NewLimiter(rate.Limit(h.opts.RequestRate), h.opts.RequestBurst),
	}
}

// run is the connection's loop: it handles frames one at a time until the
// socket closes, then unregisters the connection and reports the
// disconnect.
func (c *conn) run() {
	h := c.h
	h.reg.add(c)
	go c.readLoop()
	go c.writeLoop()
	h.mu.Lock()
	closing := h.closed // Shutdown may have listed the connections just before
	h.mu.Unlock()
	if closing {
		c.stop(websocket.StatusGoingAway)
	}

	idle := time.NewTimer(h.opts.IdleTimeout)
	defer idle.Stop()
	ping := time.NewTimer(h.opts.PingInterval)
	defer ping.Stop()
	var pong chan error // a ping under way
	login := time.NewTimer(h.opts.LoginTimeout)
	defer login.Stop()
loop:
	for {
		select {
		case <-login.C:
			if !c.authed {
				h.log.Debug("verto: no login in time", "addr", c.addr)
				c.stop(websocket.StatusPolicyViolation)
			}
		case data, ok := <-c.in:
			if !ok {
				break loop
			}
			if c.stopping.Load() {
				continue // closing: mod_verto drops the connection, reads nothing more
			}
			idle.Reset(h.opts.IdleTimeout)
			if pong == nil {
				ping.Reset(h.opts.PingInterval)
			}
			c.handleFrame(data)
		case <-ping.C:
			pong = make(chan error, 1)
			go func(pong chan<- error) {
				ctx, cancel := context.WithTimeout(c.ctx, h.opts.PongTimeout)
				defer cancel()
				pong <- c.ws.Ping(ctx)
			}(pong)
		case err := <-pong:
			pong = nil
			if err != nil {
				// Its network is gone: no closing handshake could finish.
				h.log.Debug("verto: no pong", "addr", c.addr, "err", err)
				c.kill()
				continue
			}
			ping.Reset(h.opts.PingInterval)
		case <-idle.C:
			h.log.Debug("verto: idle timeout", "addr", c.addr)
			c.stop(websocket.StatusGoingAway)
		case <-c.ctx.Done():
			break loop
		}
	}
	c.cancel()
	_ = c.ws.CloseNow() // unblocks a writer or a closing handshake still under way
	<-c.readerDone
	<-c.writerDone
	// Only a user's last connection reports a disconnect, with the address
	// of its latest login: a punted tab or a second socket closing must not
	// mark a client away while another connection of it is live.
	if last, addr := h.reg.remove(c); last && !h.presentElsewhere(c.uid) {
		h.disconnectReport(c.uid, addr)
		h.leaveSoon(c.uid, c.rs.homes)
	}
}

func (c *conn) readLoop() {
	defer close(c.readerDone)
	defer close(c.in)
	for {
		_, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return
		}
		select {
		case c.in <- data:
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *conn) writeLoop() {
	var batch []outFrame
	var buf *[]byte // an event's frame, assembled from its shared parts
	defer func() {
		// What the writer did not write is discarded, and nothing more is
		// queued: the hub's total gets back what these frames held.
		c.out.shut(batch)
		c.h.scratch.put(buf)
		close(c.writerDone)
	}()
	for {
		select {
		case <-c.out.ready:
		case <-c.ctx.Done():
			return
		}
		batch = c.out.takeFrames(batch[:0])
		for i := range batch {
			f := &batch[i]
			if f.closing() {
				_ = c.ws.Close(websocket.StatusCode(c.closeCode.Load()), c.closeWhy)
				c.cancel()
				return
			}
			var p []byte
			switch {
			case f.sh == nil:
				p = f.raw
			case !f.sh.event:
				p = f.sh.b
			default:
				if buf == nil {
					buf = c.h.scratch.get()
				}
				*buf = f.appendEvent((*buf)[:0])
				p = *buf
			}
			// No per-write context: the hub's watchdog cuts writes that take
			// longer than WriteTimeout (see Hub.watchWrites).
			c.writeSince.Store(time.Now().UnixNano())
			err := c.ws.Write(context.Background(), websocket.MessageText, p)
			c.writeSince.Store(0)
			c.out.total.release(*f)
			*f = outFrame{}
			if err != nil {
				c.h.log.Debug("verto: write failed", "addr", c.addr, "err", err)
				c.cancel()
				return
			}
		}
		c.h.scratch.put(buf) // an idle connection keeps no buffer
		buf = nil
		if cap(batch) > 64 {
			batch = nil // do not keep a burst's memory on an idle connection
		}
	}
}

// outQueue is a connection's bounded queue of frames to write. It holds no
// memory while empty, so idle connections stay small.
type outQueue struct {
	mu         sync.Mutex
	frames     []outFrame
	bytes      int // what the frames write
	deliveries int // frames others caused among them
	max        int
	maxBytes   int
	closed     bool          // the writer is gone: nothing is queued any more
	total      *queueTotal   // the hub's, over every queue
	ready      chan struct{} // capacity 1: frames are waiting
}

// pushResult says whether push queued a frame, and why not.
type pushResult int

const (
	pushed      pushResult = iota
	queueFull              // the connection's bound
	totalFull              // the hub's bound on what deliveries hold
	queueClosed            // the connection's writer is gone
)

// push queues f. Frames that others caused (own false) may fill only half
// of the queue: the other half stays for the connection's own replies, so
// a flood of deliveries can never crowd out a reader's answers and get it
// dropped. Past the hub's total for deliveries, one is queued only for a
// connection with no other delivery waiting: a reader that keeps up still
// gets everything, readers that are behind miss what comes meanwhile.
func (q *outQueue) push(f outFrame, own bool) pushResult {
	max, maxBytes := q.max, q.maxBytes
	if !own {
		max, maxBytes = max/2, maxBytes/2
	}
	n := f.size()
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return queueClosed
	case f.closing(): // the close marker always fits: the queue bound is for frames
	case len(q.frames) >= max || q.bytes+n > maxBytes:
		q.mu.Unlock()
		return queueFull
	case !own:
		if q.deliveries > 0 && q.total.over(entryCost) {
			q.mu.Unlock()
			return totalFull
		}
		f.sh.refs.Add(1)
		q.total.bytes.Add(entryCost)
		q.deliveries++
	}
	q.frames = append(q.frames, f)
	q.bytes += n
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return pushed
}

// takeFrames moves every queued frame to dst. What they hold stays charged
// to the hub's total until the writer releases each.
func (q *outQueue) takeFrames(dst []outFrame) []outFrame {
	q.mu.Lock()
	dst = append(dst, q.frames...)
	clear(q.frames)
	q.bytes, q.deliveries = 0, 0
	if cap(q.frames) > 64 {
		q.frames = nil
	} else {
		q.frames = q.frames[:0]
	}
	q.mu.Unlock()
	return dst
}

// shut discards the frames of taken (the writer's batch; frames it wrote
// are zero) and every queued frame, and refuses frames from now on.
func (q *outQueue) shut(taken []outFrame) {
	for _, f := range taken {
		q.total.release(f)
	}
	q.mu.Lock()
	frames := q.frames
	q.frames, q.bytes, q.deliveries, q.closed = nil, 0, 0, true
	q.mu.Unlock()
	for _, f := range frames {
		q.total.release(f)
	}
}

// enqueue queues a frame of the connection's own (a reply, a control
// request) without ever blocking. A connection whose queue passes its
// bounds with its own frames is dropped: it sends requests and does not
// read the replies.
func (c *conn) enqueue(f []byte) {
	if c.stopping.Load() {
		return
	}
	if c.out.push(outFrame{raw: f}, true) == queueFull {
		c.h.log.Info("verto: dropping slow connection", "addr", c.addr)
		c.h.opts.Metrics.SlowReaderClosed(metrics.SlowQueueFull)
		c.stopping.Store(true)
		c.cancel()
	}
}

// deliver queues a frame that someone else's request caused (an event, a
// relayed message: f.sh) without ever blocking. When such frames fill half
// the queue, or fill the hub's total while this reader has one waiting
// already, the frame is not queued and deliver reports false: the reader
// keeps its connection, and loses only what others sent faster than it
// could read. A reader that stops reading is cut by the write timeout
// instead.
func (c *conn) deliver(f outFrame) bool {
	if c.stopping.Load() {
		return false
	}
	switch c.out.push(f, false) {
	case pushed:
		return true
	case queueFull:
		c.h.log.Debug("verto: queue full, frame not delivered", "addr", c.addr)
		c.h.opts.Metrics.FrameDropped()
	case totalFull:
		c.h.log.Debug("verto: hub's queues full, frame not delivered", "addr", c.addr)
		c.h.opts.Metrics.FrameDropped()
	}
	return false
}

// backlog is how many frames, and bytes, wait in the queue. (Frames the
// writer has taken but not yet written are not counted: a connection may
// hold twice its queue's bounds in entries; the frames others caused are
// also counted, once each, in the hub's total.)
func (q *outQueue) backlog() (frames, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames), q.bytes
}

// stop closes the connection with code once the frames queued so far are
// written. Safe from any goroutine.
func (c *conn) stop(code websocket.StatusCode) { c.stopWith(code, "") }

// stopWith is stop with a reason in the close frame. Only the first stop
// or stopWith counts. The reason is written before the close marker is
// queued, so the writer, which takes the marker under the queue's lock,
// reads it after.
func (c *conn) stopWith(code websocket.StatusCode, reason string) {
	c.stopOnce.Do(func() {
		c.closeCode.Store(int32(code))
		c.closeWhy = reason
		c.out.push(outFrame{}, true) // the close marker always fits: the queue bound is for frames
		c.stopping.Store(true)
	})
}

// kill cuts the connection at once, without a closing handshake.
func (c *conn) kill() {
	c.stopping.Store(true)
	c.cancel()
	if c.ws != nil {
		_ = c.ws.CloseNow()
	}
}

// allow takes n requests from the connection's budget: RequestRate a
// second, RequestBurst at once. More than RequestBurst at once never pass.
func (c *conn) allow(n int) bool {
	return c.limit.AllowN(time.Now(), n)
}

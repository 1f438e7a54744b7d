package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"channels/internal/fixtures"
	"channels/internal/hub/hubtest"
	"channels/internal/verto"
)

// unreadFixture is a hub with subscribers that log in, subscribe to
// "room" and never read again, and senders that broadcast to "room" and
// read their replies. Its sockets have tiny buffers on both ends, so that
// the kernel holds little of what a subscriber does not read and the
// hub's queues fill after a few frames.
type unreadFixture struct {
	gw      *dirGateway
	th      *testHub
	mute    []*hubtest.Raw
	senders []*sender
}

// smallSendBuffers gives the server's sockets a send buffer of 4 KiB
// (the kernel doubles it), where it would grow to 4 MiB on loopback.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// sender is a client that broadcasts, counting its requests and the
// replies it read.
type sender struct {
	rc        *hubtest.Raw
	sent, got atomic.Int64
}

func newUnreadFixture(t *testing.T, mutes, senders int, mod func(*Options)) *unreadFixture {
	t.Helper()
	gw := newDirGateway()
	opts := Options{Gateway: gw, Domain: fixtures.Domain, Hostname: fixtures.Hostname}
	benchOptions(&opts) // every client is on 127.0.0.1, and senders send at will
	// The mute subscribers stay until measured: no write timeout, and no
	// ping they cannot answer.
	opts.WriteTimeout, opts.PingInterval, opts.IdleTimeout = time.Minute, time.Minute, time.Minute
	if mod != nil {
		mod(&opts)
	}
	th := serveHub(t, New(opts), func(l net.Listener) net.Listener { return smallSendBuffers{l} })
	f := &unreadFixture{gw: gw, th: th}
	for i := range mutes {
		id := fmt.Sprint("mute", i)
		gw.add(id, "pw", "room")
		rc, err := hubtest.DialRawWith(th.url, &net.Dialer{Control: hubtest.ReceiveBuffer(4096)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rc.Close)
		if err := rc.Login(id, "pw", id, "room"); err != nil {
			t.Fatal(err)
		}
		f.mute = append(f.mute, rc)
	}
	for i := range senders {
		id := fmt.Sprint("sender", i)
		gw.add(id, "pw", "room")
		rc, err := hubtest.DialRaw(th.url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rc.Close)
		if err := rc.Login(id, "pw", id, ""); err != nil {
			t.Fatal(err)
		}
		s := &sender{rc: rc}
		go func() { // its replies, read so that it is never a slow reader
			for {
				if _, err := rc.Next(); err != nil {
					return
				}
				s.got.Add(1)
			}
		}()
		f.senders = append(f.senders, s)
	}
	return f
}

// event is a broadcast to "room" whose params weigh MaxEventBytes.
func event(id int) []byte {
	head := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"verto.broadcast","params":`, id)
	params := `{"eventChannel":"room","localBroadcast":true,"eventData":"`
	pad := DefaultMaxEventBytes - len(params) - len(`"}`)
	return []byte(head + params + strings.Repeat("e", pad) + `"}}`)
}

// flood makes every sender broadcast 16 KiB events as fast as it can
// until done returns true, or fails after limit. It returns once the hub
// has answered every broadcast sent.
func (f *unreadFixture) flood(t *testing.T, limit time.Duration, done func() bool) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range f.senders {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.rc.Send(event(10 + i)); err != nil {
					t.Error(err)
					return
				}
				s.sent.Add(1)
			}
		})
	}
	deadline := time.Now().Add(limit)
	for !done() {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("not done after %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, s := range f.senders {
		for s.got.Load() < s.sent.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d broadcasts answered after %v", s.got.Load(), s.sent.Load(), limit)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// fullQueues counts the connections with at least the bytes others may
// queue for one, less a frame or two.
func (f *unreadFixture) fullQueues() int {
	h := f.th.h
	full := 0
	h.reg.eachConn(func(c *conn) {
		if _, b := c.out.backlog(); b >= h.opts.QueueBytes/2-2*(DefaultMaxEventBytes+256) {
			full++
		}
	})
	return full
}

// closeAll closes every client and waits for the hub to have closed
// their connections: what their queues held must then all be released.
func (f *unreadFixture) closeAll(t *testing.T, others ...*hubtest.Raw) {
	t.Helper()
	for _, rc := range f.mute {
		rc.Close()
	}
	for _, s := range f.senders {
		s.rc.Close()
	}
	for _, rc := range others {
		rc.Close()
	}
	h := f.th.h
	deadline := time.Now().Add(10 * time.Second)
	for {
		conns, _, _, _ := h.reg.counts()
		if conns == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open", conns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A connection leaves the registry after its writer has discarded
	// its queue.
	if n := h.queued.bytes.Load(); n != 0 {
		t.Fatalf("%d bytes still counted as queued with every connection closed", n)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestUnreadSubscribersMemory (issue 17, item 1): subscribers that never
// read, each with the half of its queue that others may fill full of 16
// KiB events (2 MiB of frames), cost the hub a queue entry per event, not
// a copy of it: the heap grows by far less than 2 MiB per subscriber. (It
// grew by 2 MiB each when every subscriber's frame was its own copy.)
// HUB_UNREAD_N sets how many subscribers (default 64), e.g. 1024.
func TestUnreadSubscribersMemory(t *testing.T) {
	mutes := 64
	if s := os.Getenv("HUB_UNREAD_N"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HUB_UNREAD_N=%q: want a positive number", s)
		}
		mutes = n
	}
	f := newUnreadFixture(t, mutes, 4, nil)
	before := heapInUse()
	f.flood(t, 60*time.Second, func() bool { return f.fullQueues() >= mutes })
	grown := int64(heapInUse()) - int64(before)
	if full := f.fullQueues(); full < mutes {
		t.Fatalf("%d of %d queues still full when measured", full, mutes)
	}
	perQueue := int64(f.th.h.opts.QueueBytes / 2)
	t.Logf("%d subscribers with %d KiB of frames waiting each: heap grew by %.1f MiB", mutes, perQueue>>10, float64(grown)/(1<<20))
	if limit := int64(mutes) * perQueue / 8; grown > limit {
		t.Fatalf("heap grew by %d MiB for %d unread subscribers, want under %d MiB (the frames they wait for are copies)",
			grown>>20, mutes, limit>>20)
	}
	f.closeAll(t)
}

// TestQueuedBytesBound: the hub's total of what deliveries hold
// (MaxQueuedBytes) stops what subscribers that never read accumulate
// before their own queues' bounds do, while a subscriber that keeps
// reading still gets every event, in eventSerno order with no gap; and
// once every connection is closed nothing is counted any more.
func TestQueuedBytesBound(t *testing.T) {
	const mutes, events, limit = 16, 150, 1 << 20
	f := newUnreadFixture(t, mutes, 1, func(o *Options) { o.MaxQueuedBytes = limit })
	h := f.th.h
	f.gw.add("reader", "pw", "room")
	reader, err := hubtest.DialRaw(f.th.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	if err := reader.Login("reader", "pw", "reader", "room"); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, events)
	go func() {
		for {
			p, err := reader.Next()
			if err != nil {
				close(got)
				return
			}
			var ev struct {
				Method string `json:"method"`
				Params struct {
					EventSerno int `json:"eventSerno"`
				} `json:"params"`
			}
			if json.Unmarshal(p, &ev) == nil && ev.Method == "verto.event" {
				got <- ev.Params.EventSerno
			}
		}
	}()
	// The reader subscribed last: when it has an event, the fan-out has
	// been to every mute subscriber.
	peak := int64(0)
	s := f.senders[0]
	for i := range events {
		if err := s.rc.Send(event(10 + i)); err != nil {
			t.Fatal(err)
		}
		s.sent.Add(1)
		select {
		case serno, ok := <-got:
			if !ok {
				t.Fatalf("the reader's connection ended at event %d", i)
			}
			if serno != i {
				t.Fatalf("event %d arrived with eventSerno %d: the reader missed some", i, serno)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d did not arrive", i)
		}
		peak = max(peak, h.queued.bytes.Load())
	}
	frame := int64(DefaultMaxEventBytes + 256)
	if slack := 2*frame + (mutes+1)*entryCost; peak > limit+slack {
		t.Fatalf("%d bytes queued at the peak, bound %d (+%d)", peak, limit, slack)
	}
	if peak < limit-frame {
		t.Fatalf("%d bytes queued at the peak: the bound %d was never reached", peak, limit)
	}
	// Each mute subscriber holds some, none as much as its own bound lets.
	h.reg.eachConn(func(c *conn) {
		if _, b := c.out.backlog(); b >= h.opts.QueueBytes/2-int(2*frame) {
			t.Errorf("%s: %d KiB waiting, past the hub's total", c.addr, b>>10)
		}
	})
	t.Logf("%d events of 16 KiB to %d subscribers that never read: %d KiB queued at the peak (bound %d KiB)",
		events, mutes, peak>>10, limit>>10)
	f.closeAll(t, reader)
}

// TestEventFrameBytes: an event's frame, assembled by the writer from the
// parts its subscribers share, is byte for byte the frame the hub built
// for each subscriber before it shared them.
func TestEventFrameBytes(t *testing.T) {
	gw := newDirGateway()
	gw.add("reader", "pw", "room")
	h := New(Options{Gateway: gw, Domain: fixtures.Domain})
	defer func() { _ = h.Shutdown(context.Background()) }()
	c := newConn(h, nil, "127.0.0.1:1")
	c.handleFrame([]byte(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"reader","passwd":"pw","sessid":"s"}}`))
	if !c.authed {
		t.Fatal("login failed")
	}
	drain(t, c)
	sub := "room.\"q\"\\é\x01" // a channel whose name JSON escapes
	names, _ := json.Marshal([]string{"room", sub})
	c.handleFrame([]byte(`{"jsonrpc":"2.0","id":2,"method":"verto.subscribe","params":{"eventChannel":` + string(names) + `}}`))
	if r := drain(t, c); len(r) != 1 || !bytes.Contains(r[0], []byte(`"subscribedChannels":["room","room.\"q\"`)) {
		t.Fatalf("subscribe: %s", r)
	}
	// What writeEvent built for each subscriber before (the code as it was).
	old := func(id, serno uint64, common []byte, channel string) []byte {
		f := make([]byte, 0, len(common)+len(channel)+112)
		f = append(f, `{"jsonrpc":"2.0","id":`...)
		f = appendUint(f, id)
		f = append(f, `,"method":"verto.event","params":`...)
		f = append(f, common...)
		if len(common) > 1 {
			f = append(f, ',')
		}
		f = append(f, `"eventSerno":`...)
		f = appendUint(f, serno)
		f = append(f, `,"subscribedChannel":`...)
		f = verto.AppendQuote(f, channel)
		return append(f, "}}"...)
	}
	var serno [2]uint64 // room, sub
	for _, common := range []string{`{`, `{"a":1`, `{"eventData":"` + strings.Repeat("x", 5000) + `","userid":"u@d"`} {
		for _, ch := range []string{"room", sub} {
			id := h.ids.Load()
			h.deliverEvent(ch, []byte(common))
			var want [][]byte
			if ch == sub { // "a.b": its subscribers, then those of "a"
				want = append(want, old(id+1, serno[1], []byte(common), sub), old(id+2, serno[0], []byte(common), "room"))
				serno[1]++
				serno[0]++
			} else {
				want = append(want, old(id+1, serno[0], []byte(common), "room"))
				serno[0]++
			}
			got := drain(t, c)
			if len(got) != len(want) {
				t.Fatalf("%d frames for an event to %q, want %d", len(got), ch, len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("event to %q:\n got %s\nwant %s", ch, got[i], want[i])
				}
			}
		}
	}
	if n := h.queued.bytes.Load(); n != 0 {
		t.Fatalf("%d bytes counted as queued after every frame was taken", n)
	}
}

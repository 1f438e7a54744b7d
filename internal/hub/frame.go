package hub

import (
	"sync"
	"sync/atomic"
)

// A frame others caused (an event, a relayed message) reaches many
// connections: it is built once, as a shared value every recipient's
// queue points to, and what differs per recipient (an event's id and
// eventSerno) is written into the frame only as it goes out. A subscriber
// that stops reading thus costs the hub a small queue entry per event,
// not a copy of it (issue 17, item 1), and queueTotal counts each shared
// frame once, however many queues hold it.

// outFrame is one frame waiting in a connection's queue: a frame of the
// connection's own (raw: a reply, a punt), or a delivery of a shared frame
// (sh) with, for an event, the id and eventSerno of this recipient's copy.
// The zero outFrame is the close marker.
type outFrame struct {
	raw   []byte
	sh    *shared
	id    uint64
	serno uint64
}

// entryCost is what the hub's total charges a queued delivery besides its
// shared frame: the 48-byte entry and its share of the spare room of the
// slices holding it.
const entryCost = 64

// eventStart is how every event frame starts, before its id.
const eventStart = `{"jsonrpc":"2.0","id":`

// shared is a frame shared by the recipients of one delivery.
//
// An event (event true) is written as eventStart, the recipient's id, b,
// its eventSerno, tail: b holds `,"method":"verto.event","params":` and
// the event's params as an object still open, ending in `"eventSerno":`;
// tail the subscribedChannel member and the closing braces. A relayed
// message is b, whole: its recipients share one id, as with mod_verto.
type shared struct {
	b, tail []byte
	event   bool
	refs    atomic.Int64 // queue entries holding it, plus one while it is being fanned out
}

// size is what the hub's total charges for the shared frame.
func (s *shared) size() int64 { return int64(len(s.b) + len(s.tail)) }

// closing reports whether f is the close marker.
func (f *outFrame) closing() bool { return f.raw == nil && f.sh == nil }

// size is the length of the frame f writes: a queue is judged by how far
// behind its reader is, whatever the frames share.
func (f *outFrame) size() int {
	switch {
	case f.sh == nil:
		return len(f.raw)
	case !f.sh.event:
		return len(f.sh.b)
	}
	return len(eventStart) + uintLen(f.id) + len(f.sh.b) + uintLen(f.serno) + len(f.sh.tail)
}

// appendEvent appends the frame of an event delivery f to dst: byte for
// byte what mod_verto writes for it.
func (f *outFrame) appendEvent(dst []byte) []byte {
	dst = append(dst, eventStart...)
	dst = appendUint(dst, f.id)
	dst = append(dst, f.sh.b...)
	dst = appendUint(dst, f.serno)
	return append(dst, f.sh.tail...)
}

func uintLen(n uint64) int {
	l := 1
	for n >= 10 {
		n /= 10
		l++
	}
	return l
}

// queueTotal counts the memory deliveries hold in all of a hub's queues
// (and in the batches their writers took but have not written yet): each
// shared frame once, from when its fan-out starts until its last queue
// entry is written or discarded, plus entryCost per entry. Past max a
// delivery is queued only for a connection with no other delivery
// waiting (see outQueue.push).
type queueTotal struct {
	bytes atomic.Int64
	max   int64
}

// share makes the shared frame of one fan-out, charged to the total and
// held by the fan-out until it calls unshare.
func (t *queueTotal) share(b, tail []byte, event bool) *shared {
	s := &shared{b: b, tail: tail, event: event}
	s.refs.Store(1)
	t.bytes.Add(s.size())
	return s
}

// unshare drops one hold on s; the last frees its charge.
func (t *queueTotal) unshare(s *shared) {
	if s.refs.Add(-1) == 0 {
		t.bytes.Add(-s.size())
	}
}

// release frees what a queued frame held: nothing for a frame of the
// connection's own, an entry and a hold on its shared frame for a
// delivery.
func (t *queueTotal) release(f outFrame) {
	if f.sh == nil {
		return
	}
	t.bytes.Add(-entryCost)
	t.unshare(f.sh)
}

// over reports whether n more bytes would pass the total's bound.
func (t *queueTotal) over(n int64) bool { return t.bytes.Load()+n > t.max }

// scratchPool holds the buffers a hub's writers assemble event frames
// in, so that an idle connection keeps none and a busy one allocates none
// per frame.
type scratchPool struct{ p sync.Pool }

func (s *scratchPool) get() *[]byte {
	if b, ok := s.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 4096)
	return &b
}

// maxScratch is the largest buffer put back in the pool: a rare large
// frame does not stay in it.
const maxScratch = 64 << 10

func (s *scratchPool) put(b *[]byte) {
	if b != nil && cap(*b) <= maxScratch {
		*b = (*b)[:0]
		s.p.Put(b)
	}
}

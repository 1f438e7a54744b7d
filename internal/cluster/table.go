package cluster

import (
	"sync"
	"sync/atomic"
	"time"

	"channels/internal/hub"
)

// table is what a node knows of the others: each live peer's members, and
// every user's connections on them all.
type table struct {
	mu    sync.RWMutex // read-locked on the hub's hot paths (RemoteConns)
	peers map[string]*peer
	conns map[string]int // uid → live connections on the peers
	// npeers is len(peers), written under mu, so that a node alone skips
	// the lock: with no peer, conns is empty.
	npeers atomic.Int32
}

// peer is another node. Its members are known up to seq when synced;
// after a missed change, until its whole membership arrives again, it is
// not synced and changes are ignored.
type peer struct {
	seq    uint64
	synced bool
	heard  time.Time // any message from it
	asked  time.Time // when its membership was last requested
	users  map[string]hub.Member

	partSeq  uint64 // membership answer being assembled
	nextPart uint64
	parts    []hub.Member
}

// askAgain is how long a node waits for a membership answer before it
// asks again.
const askAgain = 2 * time.Second

func (t *table) init() {
	t.peers = make(map[string]*peer)
	t.conns = make(map[string]int)
}

// peerLocked returns the peer id, created unsynced if new.
func (t *table) peerLocked(id string, now time.Time) *peer {
	p := t.peers[id]
	if p == nil {
		p = &peer{users: make(map[string]hub.Member)}
		t.peers[id] = p
		t.npeers.Store(int32(len(t.peers)))
	}
	p.heard = now
	return p
}

// askLocked reports whether to ask p for its membership now.
func (p *peer) askLocked(now time.Time) bool {
	if now.Sub(p.asked) < askAgain {
		return false
	}
	p.asked = now
	return true
}

// heartbeat records a heartbeat; true: ask the peer for its membership.
func (t *table) heartbeat(id string, seq uint64, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peerLocked(id, now)
	if p.synced && seq == p.seq {
		return false
	}
	p.synced = false // a change went missing (or we never had its state)
	return p.askLocked(now)
}

// delta applies a membership change; true: ask for the whole membership.
func (t *table) delta(id string, seq uint64, m hub.Member, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peerLocked(id, now)
	if !p.synced {
		return p.askLocked(now)
	}
	if seq <= p.seq {
		return false
	}
	if seq != p.seq+1 {
		p.synced = false
		return p.askLocked(now)
	}
	p.seq = seq
	t.setLocked(p, m)
	return false
}

// setLocked replaces (Conns > 0) or removes a member of p.
func (t *table) setLocked(p *peer, m hub.Member) {
	if old, ok := p.users[m.UID]; ok {
		t.addConnsLocked(m.UID, -old.Conns)
	}
	if m.Conns > 0 {
		p.users[m.UID] = m
		t.addConnsLocked(m.UID, m.Conns)
	} else {
		delete(p.users, m.UID)
	}
}

func (t *table) addConnsLocked(uid string, d int) {
	if n := t.conns[uid] + d; n > 0 {
		t.conns[uid] = n
	} else {
		delete(t.conns, uid)
	}
}

// snapshot takes one part of a peer's membership answer; the last part
// replaces what was known of it.
func (t *table) snapshot(id string, seq, part uint64, last bool, members []hub.Member, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peerLocked(id, now)
	if part == 0 {
		p.partSeq, p.nextPart, p.parts = seq, 0, p.parts[:0]
	}
	if seq != p.partSeq || part != p.nextPart {
		return // parts of another answer, or one went missing: ask again later
	}
	p.nextPart++
	p.parts = append(p.parts, members...)
	if !last {
		return
	}
	for uid, m := range p.users {
		t.addConnsLocked(uid, -m.Conns)
		delete(p.users, uid)
	}
	for _, m := range p.parts {
		t.setLocked(p, m)
	}
	p.parts = nil
	p.seq, p.synced = seq, true
}

// bye forgets a peer that left in good order: its members' connections
// closed and it said so.
func (t *table) bye(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(id)
}

func (t *table) dropLocked(id string) []hub.Member {
	p := t.peers[id]
	if p == nil {
		return nil
	}
	delete(t.peers, id)
	t.npeers.Store(int32(len(t.peers)))
	out := make([]hub.Member, 0, len(p.users))
	for uid, m := range p.users {
		t.addConnsLocked(uid, -m.Conns)
		out = append(out, m)
	}
	return out
}

// expire drops the peers silent for longer than expiry and returns them
// with all their members, and the set of those members who have no
// connection on any other peer.
func (t *table) expire(now time.Time, expiry time.Duration) (dead []string, members map[string][]hub.Member, gone map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, p := range t.peers {
		if now.Sub(p.heard) > expiry {
			dead = append(dead, id)
		}
	}
	if len(dead) == 0 {
		return nil, nil, nil
	}
	members = make(map[string][]hub.Member, len(dead))
	for _, id := range dead {
		members[id] = t.dropLocked(id)
	}
	gone = make(map[string]bool)
	for _, id := range dead {
		for _, m := range members[id] {
			if t.conns[m.UID] == 0 {
				gone[m.UID] = true
			}
		}
	}
	return dead, members, gone
}

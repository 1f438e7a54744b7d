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
	mu    sync.RWMutex // read-locked on the hub's hot paths (RemoteConns, Busy, Linked)
	peers map[string]*peer
	conns map[string]int // uid → live connections on the peers
	// npeers is len(peers), written under mu, so that a node alone skips
	// the lock: with no peer, conns is empty.
	npeers atomic.Int32

	// The wire versions this node reads, and the one it speaks: the
	// newest every live peer reads (see codec.go), and every peer that
	// left or died within keep; its oldest until settled, when every
	// live peer has been heard (one expiry after the start).
	vmin, vmax byte
	speak      atomic.Uint32
	settled    time.Time
	keep       time.Duration
	left       map[string]leftPeer
	// dead are the peers this node took for dead lately, with what it
	// did about their members, until they are heard again or deadKeep
	// passes.
	dead map[string]*deadPeer
	// busy: users whose connections on a peer said their queues are a
	// quarter full, by peer, until the note's expiry; nbusy counts the
	// entries, so that the hub's hot path skips the lock when there is
	// none.
	busy  map[string]map[string]busyNote
	nbusy atomic.Int32
}

// deadPeer is what a node did when it took a peer for dead.
type deadPeer struct {
	at       time.Time
	gone     map[string]bool // members it delivered leaves for
	reported bool            // and whose disconnects it reported
	asked    time.Time       // when it last asked the peer to give them back
	asks     int             // how many times
}

// leftPeer is what a node remembers of a peer that left or died: the
// newest wire version it read, until when that still counts.
type leftPeer struct {
	vmax  byte
	until time.Time
}

// maxAsks bounds the requests to give members back: a peer of a release
// that does not know them never answers.
const maxAsks = 5

type busyNote struct {
	until time.Time
	homes []string
}

// deadKeep is how long a node remembers a peer it took for dead, in
// case it was only silent.
const deadKeep = 10 * time.Minute

// peer is another node. Its members are known up to seq when synced;
// after a missed change, until its whole membership arrives again, it is
// not synced and changes are ignored.
type peer struct {
	vmin   byte // the wire versions it reads (0: not yet heard in a heartbeat)
	vmax   byte
	levels bool // it answers requests for budget levels (featureLevels)
	seq    uint64
	synced bool
	heard  time.Time // a heartbeat, a membership change or answer from it (clock.now)
	asked  time.Time // when its membership was last requested
	users  map[string]hub.Member

	partSeq  uint64 // membership answer being assembled
	nextPart uint64
	parts    []hub.Member
}

// heardAllSince reports whether every live peer has been heard at t or
// later.
func (t *table) heardAllSince(at time.Time) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, p := range t.peers {
		if p.heard.Before(at) {
			return false
		}
	}
	return true
}

// reachable reports whether uid is on no peer this node knows, or on one
// heard within silent of now: a direct message published to it now can
// reach it. O(peers), no scan of members: the peers are the processes.
func (t *table) reachable(uid string, now time.Time, silent time.Duration) bool {
	if t.npeers.Load() == 0 {
		return true // alone: no lock on the hub's hot path
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.conns[uid] == 0 {
		return true
	}
	for _, p := range t.peers {
		if _, ok := p.users[uid]; ok && now.Sub(p.heard) <= silent {
			return true
		}
	}
	return false
}

// addrOf is the latest login address a peer holding uid gave for it; ""
// when no peer holds it.
func (t *table) addrOf(uid string) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.conns[uid] == 0 {
		return ""
	}
	for _, p := range t.peers {
		if m, ok := p.users[uid]; ok && m.Addr != "" {
			return m.Addr
		}
	}
	return ""
}

// silent lists the live peers not heard for more than d before now.
func (t *table) silent(now time.Time, d time.Duration) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []string
	for id, p := range t.peers {
		if now.Sub(p.heard) > d {
			out = append(out, id)
		}
	}
	return out
}

// askAgain is how long a node waits for a membership answer before it
// asks again.
const askAgain = 2 * time.Second

func (t *table) init(vmin, vmax byte) {
	t.peers = make(map[string]*peer)
	t.conns = make(map[string]int)
	t.dead = make(map[string]*deadPeer)
	t.busy = make(map[string]map[string]busyNote)
	t.left = make(map[string]leftPeer)
	t.vmin, t.vmax = vmin, vmax
	t.speak.Store(uint32(vmin))
}

// settle makes the node speak its oldest version until settled, and
// remember a peer that left for keep (one that died, for deadKeep):
// before then, a peer not heard yet, or one that left and comes back (a
// process restarted, a node wrongly taken for dead) may read no newer.
func (t *table) settle(settled time.Time, keep time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settled, t.keep = settled, keep
	t.speakLocked(time.Now())
}

// respeak sets the version to speak again as time passes.
func (t *table) respeak(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.speakLocked(now)
}

// heard says what a message from a peer asks of this node.
type heard struct {
	ask      bool // ask it for its whole membership
	revive   bool // it was taken for dead: ask it to give its members back
	reported bool // …whose disconnects this node reported
	first    bool // the first time it is asked
}

// peerLocked returns the peer id, created unsynced if new.
func (t *table) peerLocked(id string, now time.Time, h *heard) *peer {
	p := t.peers[id]
	if p == nil {
		p = &peer{users: make(map[string]hub.Member)}
		t.peers[id] = p
		t.npeers.Store(int32(len(t.peers)))
		t.speakLocked(now)
	}
	p.heard = now
	if d := t.dead[id]; d != nil && h != nil && now.Sub(d.asked) >= askAgain {
		d.asked = now
		d.asks++
		h.revive, h.reported, h.first = true, d.reported, d.asks == 1
		if d.asks >= maxAsks {
			delete(t.dead, id)
		}
	}
	return p
}

// speakLocked sets the version to speak: the newest that this node, every
// live peer and every peer that left within keep read; this node's
// oldest before it settled, while no peer is known, while a peer's
// versions are not (its heartbeat not heard yet), or when a peer reads
// none this node speaks.
func (t *table) speakLocked(now time.Time) {
	v := t.vmax
	if now.Before(t.settled) || len(t.peers) == 0 {
		v = t.vmin
	}
	for _, p := range t.peers {
		if p.vmax == 0 {
			v = t.vmin
		} else {
			v = min(v, p.vmax)
		}
	}
	for id, l := range t.left {
		if !now.Before(l.until) {
			delete(t.left, id)
			continue
		}
		v = min(v, l.vmax)
	}
	v = max(v, t.vmin)
	t.speak.Store(uint32(v))
}

// askLocked reports whether to ask p for its membership now.
func (p *peer) askLocked(now time.Time) bool {
	if now.Sub(p.asked) < askAgain {
		return false
	}
	p.asked = now
	return true
}

// heartbeat records a heartbeat of a peer that reads the wire versions
// vmin to vmax.
func (t *table) heartbeat(id string, seq uint64, vmin, vmax byte, now time.Time) (h heard) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peerLocked(id, now, &h)
	if p.vmin != vmin || p.vmax != vmax {
		p.vmin, p.vmax = vmin, vmax
		t.speakLocked(now)
	}
	if p.synced && seq == p.seq {
		return h
	}
	p.synced = false // a change went missing (or we never had its state)
	h.ask = p.askLocked(now)
	return h
}

// features records the features a peer announced in its heartbeat.
func (t *table) features(id string, f uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		p.levels = f&featureLevels != 0
	}
}

// holders lists the live peers where uid has connections and that answer
// requests for budget levels.
func (t *table) holders(uid string) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.conns[uid] == 0 {
		return nil
	}
	var out []string
	for id, p := range t.peers {
		if _, ok := p.users[uid]; ok && p.levels {
			out = append(out, id)
		}
	}
	return out
}

// delta applies a membership change.
func (t *table) delta(id string, seq uint64, m hub.Member, now time.Time) (h heard) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peerLocked(id, now, &h)
	if !p.synced {
		h.ask = p.askLocked(now)
		return h
	}
	if seq <= p.seq {
		return h
	}
	if seq != p.seq+1 {
		p.synced = false
		h.ask = p.askLocked(now)
		return h
	}
	p.seq = seq
	t.setLocked(p, m)
	return h
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
	p := t.peerLocked(id, now, nil) // its members are asked for on its heartbeats
	if part == 0 {
		p.partSeq, p.nextPart, p.parts = seq, 0, p.parts[:0]
	}
	if seq != p.partSeq || part != p.nextPart {
		return // parts of another answer, or one went missing: ask again later
	}
	p.nextPart++
	if len(p.parts) == 0 {
		p.parts = members // the first part: no copy
	} else {
		p.parts = append(p.parts, members...)
	}
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
func (t *table) bye(id string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(id, now, now.Add(t.keep))
	delete(t.dead, id)
}

// dropLocked forgets a peer, remembering the versions it read until
// keepUntil, and returns its members.
func (t *table) dropLocked(id string, now, keepUntil time.Time) []hub.Member {
	p := t.peers[id]
	if p == nil {
		return nil
	}
	delete(t.peers, id)
	t.npeers.Store(int32(len(t.peers)))
	if p.vmax != 0 {
		t.left[id] = leftPeer{vmax: p.vmax, until: keepUntil}
	}
	t.speakLocked(now)
	out := make([]hub.Member, 0, len(p.users))
	for uid, m := range p.users {
		t.addConnsLocked(uid, -m.Conns)
		out = append(out, m)
	}
	return out
}

// expire drops the peers silent for longer than expiry and returns them
// with all their members, and the set of those members who have no
// connection on any other peer. It remembers the dead and their gone
// members, and whether this node reports their disconnects, for deadKeep:
// a peer that was only silent is asked to give them back when heard again.
func (t *table) expire(now time.Time, expiry time.Duration, self string) (dead []string, members map[string][]hub.Member, gone map[string]bool, leader bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, d := range t.dead {
		if now.Sub(d.at) > deadKeep {
			delete(t.dead, id)
		}
	}
	for id, p := range t.peers {
		if now.Sub(p.heard) > expiry {
			dead = append(dead, id)
		}
	}
	if len(dead) == 0 {
		return nil, nil, nil, false
	}
	members = make(map[string][]hub.Member, len(dead))
	for _, id := range dead {
		members[id] = t.dropLocked(id, now, now.Add(deadKeep))
	}
	leader = t.leaderLocked(self)
	gone = make(map[string]bool)
	for _, id := range dead {
		d := &deadPeer{at: now, gone: make(map[string]bool), reported: leader}
		for _, m := range members[id] {
			if t.conns[m.UID] == 0 {
				gone[m.UID] = true
				d.gone[m.UID] = true
			}
		}
		t.dead[id] = d
	}
	return dead, members, gone, leader
}

// leaderLocked reports whether self has the smallest id among the live
// nodes.
func (t *table) leaderLocked(self string) bool {
	for id := range t.peers {
		if id < self {
			return false
		}
	}
	return true
}

// replayed takes part of a peer's replay: it returns the members of it
// this node took for gone when it took the peer for dead (and still
// does: no other peer has them now), and whether it reported their
// disconnects. The last part ends the peer's record.
func (t *table) replayed(id string, members []hub.Member, last bool) (back []hub.Member, reported bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.dead[id]
	if d == nil {
		return nil, false
	}
	for _, m := range members {
		others := t.conns[m.UID]
		if p := t.peers[id]; p != nil {
			others -= p.users[m.UID].Conns
		}
		if d.gone[m.UID] && others <= 0 {
			back = append(back, m)
			delete(d.gone, m.UID)
		}
	}
	if last {
		delete(t.dead, id)
	}
	return back, d.reported
}

// setBusy records a peer's note that uid's connections there are (or no
// longer are) a quarter full.
func (t *table) setBusy(id, uid string, busy bool, homes []string, until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	notes := t.busy[uid]
	if !busy {
		if _, ok := notes[id]; ok {
			delete(notes, id)
			t.nbusy.Add(-1)
			if len(notes) == 0 {
				delete(t.busy, uid)
			}
		}
		return
	}
	if notes == nil {
		notes = make(map[string]busyNote)
		t.busy[uid] = notes
	}
	if _, ok := notes[id]; !ok {
		t.nbusy.Add(1)
	}
	notes[id] = busyNote{until: until, homes: homes}
}

// busyAt reports whether a peer said lately that uid's connections there
// are a quarter full, and the channels those connections are allowed
// (nil: any).
func (t *table) busyAt(uid string) (homes []string, busy bool) {
	if t.nbusy.Load() == 0 {
		return nil, false
	}
	now := time.Now()
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, n := range t.busy[uid] {
		if now.Before(n.until) {
			if n.homes == nil {
				return nil, true
			}
			homes, busy = append(homes, n.homes...), true
		}
	}
	if busy && homes == nil {
		homes = []string{} // busy, but in no channel
	}
	return homes, busy
}

// sweepBusy forgets expired busy notes.
func (t *table) sweepBusy(now time.Time) {
	if t.nbusy.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for uid, notes := range t.busy {
		for id, n := range notes {
			if !now.Before(n.until) {
				delete(notes, id)
				t.nbusy.Add(-1)
			}
		}
		if len(notes) == 0 {
			delete(t.busy, uid)
		}
	}
}

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"channels/internal/hub"
)

// places counts the users present in each channel over the whole cluster,
// for -max-clients-per-channel, in a JetStream key-value bucket: one key
// per channel, whose value maps each present user to the nodes where it
// has connections. Every change is a compare-and-set on the key's
// revision, so simultaneous logins on different nodes cannot both take
// the last place: one of them sees the other's write and counts again.
// The admissions waiting on one node for one key go in one write (a
// batch), so a wave of logins contends between nodes, not between
// logins: 900 simultaneous logins into 300 places take a few dozen
// writes, and none gives up.
//
// A node holds a user's place while any of its local connections was
// admitted (holds counts them); the first admission writes the key, the
// last release removes the node from it, and a user held here gets in
// again without asking (a reload, a second tab), even while NATS is
// unreachable. When the count cannot be read (NATS unreachable, JetStream
// failing), a user not held here is not admitted: Undecided, never a
// count of this node's own, which would let every node fill the channel.
// Only a server without JetStream makes each node count its own
// (Unavailable), as it says at start.
//
// The bucket is kept on the server's disk, so it outlives a restart of
// NATS; every node rewrites its own entries after a reconnect anyway, and
// whenever a release could not be written. The leader removes a dead
// node's entries when it finds the node dead and, from Expiry after its
// own start on, every 15 s the entries of any node that is not alive (a
// whole cluster that crashed and restarted has new node ids).
type places struct {
	n    *Node
	seed maphash.Seed

	first chan struct{} // closed when the first attempt to open the bucket ended

	mu      sync.Mutex
	kv      jetstream.KeyValue // nil until the bucket is ready
	noJS    bool               // the server has no JetStream: each node counts its own
	holds   map[string]*hold
	byKey   map[string]map[string]bool // key → users held there (holds, by key)
	pending map[string]int             // users whose admission is being written
	dirty   map[string]struct{}        // keys whose write failed
	batches map[string]*batch          // admissions waiting for a key's next write
	noJSRun int                        // attempts in a row that found no JetStream
	warned  bool
	stripes [64]sync.Mutex // one admission or release per user at a time
	wg      sync.WaitGroup

	sweeping atomic.Bool // one sweep at a time
}

// batch is the admissions waiting on this node for one key: one goroutine
// writes them all in one compare-and-set, then the ones that came
// meanwhile.
type batch struct{ asks []*ask }

// ask is one admission into one key.
type ask struct {
	uid   string
	limit int
	full  bool
	err   error
	done  chan struct{}
}

type hold struct {
	n     int
	homes []string
}

// placesTimeout bounds one write of a key's admissions.
const placesTimeout = 2 * time.Second

func newPlaces(n *Node) *places {
	p := &places{
		n: n, seed: maphash.MakeSeed(), first: make(chan struct{}),
		holds: make(map[string]*hold), byKey: make(map[string]map[string]bool), pending: make(map[string]int),
		dirty: make(map[string]struct{}), batches: make(map[string]*batch),
	}
	p.spawn(func() {
		p.ready(false)
		close(p.first)
		p.retry()
	})
	return p
}

// retry opens the bucket again, backing off from a second to 15 s, for
// as long as it is missing and JetStream is not known to be absent: a
// first attempt may fail while NATS is connected (a JetStream still
// electing its leader, a request timed out under load), and until the
// bucket is open no newcomer gets into a limited channel.
func (p *places) retry() {
	wait := time.Second
	for {
		p.mu.Lock()
		done := p.kv != nil || p.noJS
		p.mu.Unlock()
		if done {
			return
		}
		select {
		case <-p.n.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, placesSweep)
		if p.n.nc.IsConnected() {
			p.ready(false)
		}
	}
}

// noJSAfter is how many attempts in a row must find no JetStream before
// a node counts its own clients: nats.go reports a passing lack of
// responders the same way.
const noJSAfter = 3

// holdLocked records a user's first admission here, under p.mu.
func (p *places) holdLocked(uid string, homes []string) {
	p.holds[uid] = &hold{n: 1, homes: homes}
	for _, ch := range homes {
		k := token(ch)
		if p.byKey[k] == nil {
			p.byKey[k] = map[string]bool{}
		}
		p.byKey[k][uid] = true
	}
}

// unholdLocked forgets a user's hold, under p.mu.
func (p *places) unholdLocked(uid string, h *hold) {
	delete(p.holds, uid)
	for _, ch := range h.homes {
		k := token(ch)
		delete(p.byKey[k], uid)
		if len(p.byKey[k]) == 0 {
			delete(p.byKey, k)
		}
	}
}

// spawn runs fn off the caller's path; wait waits for it.
func (p *places) spawn(fn func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		fn()
	}()
}

// bucket names the key-value bucket. (Until the bucket moved to the
// server's disk it was "<root>_places", in memory; a storage cannot be
// changed in place, hence the new name.)
func (p *places) bucket() string {
	return strings.ReplaceAll(p.n.root, ".", "_") + "_seats"
}

// ready makes sure the bucket exists (the server may have restarted and
// lost it), then, after a reconnect, rewrites this node's entries.
func (p *places) ready(resync bool) {
	ctx, cancel := context.WithTimeout(p.n.ctx, 5*time.Second)
	defer cancel()
	js, err := jetstream.New(p.n.nc)
	if err == nil {
		// An existing bucket is used as it is: an operator may have given
		// it replicas on a NATS cluster (nats kv edit --replicas 3).
		var kv jetstream.KeyValue
		kv, err = js.KeyValue(ctx, p.bucket())
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:      p.bucket(),
				Description: "Channels: users present per channel, by node",
				History:     1,
				Storage:     jetstream.FileStorage,
			})
			if errors.Is(err, jetstream.ErrBucketExists) { // another node made it meanwhile
				kv, err = js.KeyValue(ctx, p.bucket())
			}
		}
		if err == nil {
			p.mu.Lock()
			p.kv, p.noJS, p.noJSRun, p.warned = kv, false, 0, false
			p.mu.Unlock()
		}
	}
	if err != nil {
		p.mu.Lock()
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
			errors.Is(err, nats.ErrNoResponders) { // nobody answers JetStream's requests
			p.noJSRun++
		} else {
			p.noJSRun = 0
		}
		noJS := p.noJSRun >= noJSAfter
		warned := p.warned && (p.noJS || !noJS) // say it again when it becomes final
		p.warned = true
		p.noJS = noJS
		p.mu.Unlock()
		switch {
		case noJS:
			if !warned {
				p.n.log.Error("cluster: NATS has no JetStream (run nats-server with -js), so each process counts its own clients per channel", "err", err)
			}
		case !warned && p.n.nc.IsConnected():
			p.n.log.Error("cluster: no JetStream key-value bucket for the clients per channel; only users already here get in until it is back", "err", err)
		}
		return
	}
	if resync {
		p.sweep(false, true)
	}
}

func (p *places) lock(uid string) func() {
	m := &p.stripes[maphash.String(p.seed, uid)%uint64(len(p.stripes))]
	m.Lock()
	return m.Unlock
}

// value is a key's value: user → nodes where it has connections.
type value map[string][]string

func (p *places) admit(ctx context.Context, uid string, homes []string, limit int) hub.Admission {
	wait := time.NewTimer(placesTimeout)
	select {
	case <-p.first: // the bucket is open, or known to be missing
		wait.Stop()
	case <-wait.C:
		return hub.Undecided
	case <-ctx.Done():
		wait.Stop()
		return hub.Undecided
	}
	unlock := p.lock(uid)
	defer unlock()
	p.mu.Lock()
	if h := p.holds[uid]; h != nil {
		h.n++ // present here: it counts once, and asks nobody
		p.mu.Unlock()
		return hub.Admitted
	}
	kv, noJS := p.kv, p.noJS
	p.mu.Unlock()
	if kv == nil {
		if noJS {
			return hub.Unavailable
		}
		return hub.Undecided
	}
	if !p.n.nc.IsConnected() {
		return hub.Undecided
	}
	// Pending: a sweep that meets this node's entry for uid before the
	// hold is recorded must not take it for a leftover.
	p.mu.Lock()
	p.pending[uid]++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.pending[uid]--; p.pending[uid] <= 0 {
			delete(p.pending, uid)
		}
		p.mu.Unlock()
	}()
	var added []string
	undo := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), placesTimeout)
		defer cancel()
		self := p.n.id
		for _, ch := range added {
			p.write(ctx, kv, token(ch), func(v value) bool { return v.drop(uid, self) })
		}
	}
	for _, ch := range homes {
		a := p.enter(kv, token(ch), uid, limit)
		if a.err != nil { // (writeBatches took back what it may have written in this key)
			undo()
			return hub.Undecided
		}
		if a.full {
			undo()
			return hub.Full
		}
		added = append(added, ch)
	}
	p.mu.Lock()
	p.holdLocked(uid, homes)
	p.mu.Unlock()
	return hub.Admitted
}

// enter asks for uid's place in key, in the next write of the key's
// batch, and waits for the answer.
func (p *places) enter(kv jetstream.KeyValue, key, uid string, limit int) *ask {
	a := &ask{uid: uid, limit: limit, done: make(chan struct{})}
	p.mu.Lock()
	b := p.batches[key]
	writer := b == nil
	if writer {
		b = &batch{}
		p.batches[key] = b
	}
	b.asks = append(b.asks, a)
	p.mu.Unlock()
	if writer {
		p.spawn(func() { p.writeBatches(kv, key) })
	}
	<-a.done
	return a
}

// writeBatches writes key's waiting admissions, one compare-and-set for
// all that wait, until none waits. Each write is bounded by
// placesTimeout, and every ask gets its answer.
func (p *places) writeBatches(kv jetstream.KeyValue, key string) {
	self := p.n.id
	for {
		p.mu.Lock()
		b := p.batches[key]
		asks := b.asks
		b.asks = nil
		if len(asks) == 0 {
			delete(p.batches, key)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(p.n.ctx, placesTimeout)
		err := p.modify(ctx, kv, key, func(v value) bool {
			changed := false
			for _, a := range asks { // in arrival order, again on every retry
				nodes := v[a.uid]
				a.full = false
				switch {
				case slices.Contains(nodes, self):
				case len(nodes) == 0 && len(v) >= a.limit:
					a.full = true
				default:
					v[a.uid] = append(nodes, self)
					changed = true
				}
			}
			return changed
		})
		cancel()
		if err != nil {
			// The write may have happened: take the batch back, in one
			// write, before its logins are refused.
			p.n.log.Warn("cluster: clients per channel cannot be counted now; only users already here get in", "err", err, "logins", len(asks))
			ctx, cancel := context.WithTimeout(p.n.ctx, placesTimeout)
			p.write(ctx, kv, key, func(v value) bool {
				changed := false
				for _, a := range asks {
					changed = v.drop(a.uid, self) || changed
				}
				return changed
			})
			cancel()
		}
		for _, a := range asks {
			a.err = err
			close(a.done)
		}
	}
}

// release gives back one admission of uid; the last one removes this node
// from uid's channels, off the caller's path.
func (p *places) release(uid string) {
	p.spawn(func() {
		unlock := p.lock(uid)
		defer unlock()
		p.mu.Lock()
		h := p.holds[uid]
		if h == nil {
			p.mu.Unlock()
			return
		}
		h.n--
		if h.n > 0 {
			p.mu.Unlock()
			return
		}
		p.unholdLocked(uid, h)
		kv := p.kv
		p.mu.Unlock()
		if kv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), placesTimeout)
		defer cancel()
		self := p.n.id
		for _, ch := range h.homes {
			p.write(ctx, kv, token(ch), func(v value) bool { return v.drop(uid, self) })
		}
	})
}

// write is modify that remembers a key it could not write, for the next
// sweep.
func (p *places) write(ctx context.Context, kv jetstream.KeyValue, key string, fn func(value) bool) {
	if err := p.modify(ctx, kv, key, fn); err != nil {
		p.mu.Lock()
		p.dirty[key] = struct{}{}
		p.mu.Unlock()
	}
}

// drop removes node from uid's nodes.
func (v value) drop(uid, node string) bool {
	nodes := v[uid]
	i := slices.Index(nodes, node)
	if i < 0 {
		return false
	}
	nodes = slices.Delete(nodes, i, i+1)
	if len(nodes) == 0 {
		delete(v, uid)
	} else {
		v[uid] = nodes
	}
	return true
}

// modify applies fn to the key's value with compare-and-set, again from
// a fresh read whenever another node wrote the key in between.
func (p *places) modify(ctx context.Context, kv jetstream.KeyValue, key string, fn func(value) bool) error {
	for {
		v := value{}
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &v); err != nil || v == nil {
				v = value{}
			}
		}
		if !fn(v) {
			return nil
		}
		switch {
		case len(v) == 0 && rev != 0:
			// Emptied: deleted, so that the leader's sweeps list only the
			// channels that have somebody (a deleted key is created anew).
			err = kv.Delete(ctx, key, jetstream.LastRevision(rev))
		case len(v) == 0:
			return nil
		case rev == 0:
			data, _ := json.Marshal(v)
			_, err = kv.Create(ctx, key, data)
		default:
			data, _ := json.Marshal(v)
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// dropNode removes a dead node from the channels of its members.
func (p *places) dropNode(dead string, members []hub.Member) {
	p.mu.Lock()
	kv := p.kv
	p.mu.Unlock()
	if kv == nil {
		return
	}
	keys := map[string]struct{}{}
	for _, m := range members {
		for _, ch := range m.Homes {
			keys[token(ch)] = struct{}{}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for key := range keys {
		p.write(ctx, kv, key, func(v value) bool { return v.dropNode(dead) })
	}
}

func (v value) dropNode(node string) bool {
	changed := false
	for uid := range v {
		if v.drop(uid, node) {
			changed = true
		}
	}
	return changed
}

// sweep rewrites this node's entries to match its holds in the keys
// whose write failed and, with resync (after a reconnect), in the keys of
// all its holds; with leader (the leader, once every live node has had
// time to be heard) it also removes, in every key, the entries of nodes
// that are not alive. Each key's write decides from the holds as they are
// when it is written (and written again, when another write came in
// between): an admission or a release under way while the sweep runs is
// never undone by it. One sweep runs at a time; one asked for meanwhile
// is skipped.
func (p *places) sweep(leader, resync bool) {
	if !p.sweeping.CompareAndSwap(false, true) {
		return
	}
	defer p.sweeping.Store(false)
	p.mu.Lock()
	kv := p.kv
	keys := map[string]struct{}{}
	for k := range p.dirty {
		keys[k] = struct{}{}
	}
	clear(p.dirty)
	if resync {
		for k := range p.byKey {
			keys[k] = struct{}{}
		}
	}
	p.mu.Unlock()
	if kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(p.n.ctx, 30*time.Second)
	defer cancel()
	if leader {
		if lister, err := kv.ListKeys(ctx); err == nil {
			for k := range lister.Keys() {
				keys[k] = struct{}{}
			}
		}
	}
	self := p.n.id
	for key := range keys {
		p.write(ctx, kv, key, func(v value) bool {
			changed := false
			p.mu.Lock()
			defer p.mu.Unlock()
			held := p.byKey[key]
			for uid, nodes := range v {
				for _, node := range slices.Clone(nodes) {
					if node == self && !held[uid] && p.pending[uid] == 0 || leader && node != self && !p.n.alive(node) {
						v.drop(uid, node)
						changed = true
					}
				}
			}
			for uid := range held {
				if !slices.Contains(v[uid], self) {
					v[uid] = append(v[uid], self)
					changed = true
				}
			}
			return changed
		})
	}
}

// wait waits for the releases under way, at most until ctx ends.
func (p *places) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"channels/internal/hub"
)

// places counts the users present in each channel over the whole cluster,
// for -max-clients-per-channel, in a JetStream key-value bucket: one key
// per channel, whose value maps each present user to the nodes where it
// has connections. Every change is a compare-and-set on the key's
// revision, so simultaneous logins on different nodes cannot both take
// the last place: one of them sees the other's write and counts again.
//
// A node holds a user's place while any of its local connections was
// admitted (holds counts them); the first admission writes the key, the
// last release removes the node from it. A dead node's entries are
// removed by the leader; every node rewrites its own entries after a
// reconnect (the bucket lives in the server's memory) and whenever a
// release could not be written.
type places struct {
	n    *Node
	seed maphash.Seed

	mu      sync.Mutex
	kv      jetstream.KeyValue // nil until the bucket is ready
	holds   map[string]*hold
	dirty   map[string]struct{} // keys whose write failed
	warned  bool
	stripes [64]sync.Mutex // one admission or release per user at a time
	wg      sync.WaitGroup
}

type hold struct {
	n     int
	homes []string
}

// placesTimeout bounds one admission's round trips.
const placesTimeout = 2 * time.Second

func newPlaces(n *Node) *places {
	p := &places{n: n, seed: maphash.MakeSeed(), holds: make(map[string]*hold), dirty: make(map[string]struct{})}
	p.spawn(func() { p.ready(false) })
	return p
}

// spawn runs fn off the caller's path; wait waits for it.
func (p *places) spawn(fn func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		fn()
	}()
}

func (p *places) bucket() string {
	return strings.ReplaceAll(p.n.root, ".", "_") + "_places"
}

// ready makes sure the bucket exists (the server may have restarted and
// lost it), then, after a reconnect, rewrites this node's entries.
func (p *places) ready(resync bool) {
	ctx, cancel := context.WithTimeout(p.n.ctx, 5*time.Second)
	defer cancel()
	js, err := jetstream.New(p.n.nc)
	if err == nil {
		var kv jetstream.KeyValue
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      p.bucket(),
			Description: "Channels: users present per channel, by node",
			History:     1,
			Storage:     jetstream.MemoryStorage,
		})
		if err == nil {
			p.mu.Lock()
			p.kv, p.warned = kv, false
			p.mu.Unlock()
		}
	}
	if err != nil {
		p.mu.Lock()
		warned := p.warned
		p.warned = true
		p.mu.Unlock()
		if !warned && p.n.nc.IsConnected() {
			p.n.log.Error("cluster: no JetStream key-value bucket for the clients per channel (run nats-server with -js); each process counts its own clients meanwhile", "err", err)
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
	p.mu.Lock()
	kv := p.kv
	p.mu.Unlock()
	if kv == nil || !p.n.nc.IsConnected() {
		return hub.Unavailable
	}
	unlock := p.lock(uid)
	defer unlock()
	p.mu.Lock()
	if h := p.holds[uid]; h != nil {
		h.n++
		p.mu.Unlock()
		return hub.Admitted
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, placesTimeout)
	defer cancel()
	self := p.n.id
	var added []string
	undo := func() {
		for _, ch := range added {
			p.write(ctx, kv, token(ch), func(v value) bool { return v.drop(uid, self) })
		}
	}
	for _, ch := range homes {
		full := false
		err := p.modify(ctx, kv, token(ch), func(v value) bool {
			nodes := v[uid]
			if slices.Contains(nodes, self) {
				return false
			}
			if len(nodes) == 0 && len(v) >= limit {
				full = true
				return false
			}
			v[uid] = append(nodes, self)
			return true
		})
		if err != nil {
			p.n.log.Warn("cluster: clients per channel unavailable; counting this process's own", "err", err)
			undo()
			return hub.Unavailable
		}
		if full {
			undo()
			return hub.Full
		}
		added = append(added, ch)
	}
	p.mu.Lock()
	p.holds[uid] = &hold{n: 1, homes: homes}
	p.mu.Unlock()
	return hub.Admitted
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
		delete(p.holds, uid)
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
		data, _ := json.Marshal(v)
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
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
// that are not alive.
func (p *places) sweep(leader, resync bool) {
	p.mu.Lock()
	kv := p.kv
	keys := map[string]struct{}{}
	for k := range p.dirty {
		keys[k] = struct{}{}
	}
	clear(p.dirty)
	held := map[string]map[string]bool{} // key → users held there
	for uid, h := range p.holds {
		for _, ch := range h.homes {
			k := token(ch)
			if resync {
				keys[k] = struct{}{}
			}
			if held[k] == nil {
				held[k] = map[string]bool{}
			}
			held[k][uid] = true
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
			for uid, nodes := range v {
				for _, node := range slices.Clone(nodes) {
					if node == self && !held[key][uid] || leader && node != self && !p.n.alive(node) {
						v.drop(uid, node)
						changed = true
					}
				}
			}
			for uid := range held[key] {
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

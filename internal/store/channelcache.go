package store

import (
	"sync"
	"time"
)

// RecentChannelAge is how long RecentChannel answers from what this
// process last read: a channel deleted or edited elsewhere (another
// process, the command line) may be seen as it was for this long.
const RecentChannelAge = time.Second

// maxRecentChannels bounds the channels remembered. Only lookups that
// found a client in its channel add one, so filling it takes that many
// real channels, each read within RecentChannelAge.
const maxRecentChannels = 10000

// recentChannels remembers the channels ClientInChannel read, with when.
type recentChannels struct {
	mu      sync.Mutex
	m       map[string]recentChannel
	forgets forgets
}

type recentChannel struct {
	ch   Channel
	read time.Time
}

// generation returns the count of forgets of id's slot, taken before a
// read that put will keep.
func (r *recentChannels) generation(id string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.forgets.of(id)
}

// put keeps ch as read at now, unless a forget of its slot came since
// generation returned gen: the read may predate that change.
func (r *recentChannels) put(ch Channel, now time.Time, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.forgets.of(ch.ID) != gen {
		return
	}
	if r.m == nil {
		r.m = map[string]recentChannel{}
	}
	if _, ok := r.m[ch.ID]; !ok && len(r.m) >= maxRecentChannels {
		for id, e := range r.m {
			if now.Sub(e.read) >= RecentChannelAge {
				delete(r.m, id)
			}
		}
		if len(r.m) >= maxRecentChannels {
			clear(r.m)
		}
	}
	r.m[ch.ID] = recentChannel{ch, now}
}

// forget drops id, so this process sees its own edit or deletion at once.
func (r *recentChannels) forget(id string) {
	r.mu.Lock()
	r.forgets.bump(id)
	delete(r.m, id)
	r.mu.Unlock()
}

func (r *recentChannels) get(id string, now time.Time) (Channel, bool) {
	r.mu.Lock()
	e, ok := r.m[id]
	r.mu.Unlock()
	// A clock that went back counts as stale too.
	if !ok || now.Before(e.read) || now.Sub(e.read) >= RecentChannelAge {
		return Channel{}, false
	}
	return e.ch, true
}

// forgetSlots is how many counters forgets keeps: a fixed size, however
// many channels a process sees.
const forgetSlots = 256

// forgets counts, per slot of channel ids, the forgets of a cache. A read
// that began before a forget of its channel must not be kept: it may hold
// the state from before the change that forget was for (made by this
// process, or heard of), and would answer it for a whole age. Channels
// share slots, so a forget may cost another channel one read kept, never
// a stale one. Guarded by its cache's lock.
type forgets [forgetSlots]uint64

// forgetSlot is id's slot: FNV-1a, as ids are random already.
func forgetSlot(id string) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % forgetSlots)
}

func (f *forgets) of(id string) uint64 { return f[forgetSlot(id)] }

func (f *forgets) bump(id string) { f[forgetSlot(id)]++ }

// RecentChannel returns the channel as this process's last
// ClientInChannel read it, if that was less than RecentChannelAge ago. It
// spares the channel page of a returning browser a query per view; its
// answer may lag behind a change or a deletion by up to RecentChannelAge.
func (s *Store) RecentChannel(id string) (Channel, bool) {
	return s.recent.get(id, s.now())
}

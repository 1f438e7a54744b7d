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
	mu sync.Mutex
	m  map[string]recentChannel
}

type recentChannel struct {
	ch   Channel
	read time.Time
}

func (r *recentChannels) put(ch Channel, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
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

// RecentChannel returns the channel as this process's last
// ClientInChannel read it, if that was less than RecentChannelAge ago. It
// spares the channel page of a returning browser a query per view; its
// answer may lag behind a change or a deletion by up to RecentChannelAge.
func (s *Store) RecentChannel(id string) (Channel, bool) {
	return s.recent.get(id, s.now())
}

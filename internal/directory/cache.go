package directory

import (
	"sync"
	"time"

	"channels/internal/store"
)

// cache keeps what never changes about a client — id, password, channel —
// for a while after a lookup, so repeated logins skip the database. Only
// found clients are cached.
type cache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
	size    int
	ttl     time.Duration
	now     func() time.Time
}

type cacheEntry struct {
	password, channel string
	expires           time.Time
}

func newCache(size int, ttl time.Duration, now func() time.Time) *cache {
	return &cache{entries: make(map[string]cacheEntry, min(size, 1024)), size: size, ttl: ttl, now: now}
}

// get returns the cached client; a nil cache has nothing.
func (c *cache) get(id string) (store.Client, bool) {
	if c == nil {
		return store.Client{}, false
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[id]
	if ok && !now.Before(e.expires) {
		delete(c.entries, id)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return store.Client{}, false
	}
	return store.Client{ID: id, Password: e.password, ChannelID: e.channel}, true
}

// put caches a client; when full, an arbitrary entry makes room.
func (c *cache) put(cl store.Client) {
	if c == nil {
		return
	}
	e := cacheEntry{password: cl.Password, channel: cl.ChannelID, expires: c.now().Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[cl.ID]; !ok && len(c.entries) >= c.size {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[cl.ID] = e
}

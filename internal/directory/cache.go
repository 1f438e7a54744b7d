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
	// body is the client's directory entry, rendered (nil: not yet; a
	// report cached the client).
	body    []byte
	expires time.Time
}

func newCache(size int, ttl time.Duration, now func() time.Time) *cache {
	// Not sized ahead: the collector scans a map's whole table every
	// cycle, and a table for 1024 entries is 200 KB where a few clients
	// log in.
	return &cache{entries: make(map[string]cacheEntry), size: size, ttl: ttl, now: now}
}

// get returns the cached client; a nil cache has nothing.
func (c *cache) get(id string) (store.Client, bool) {
	cl, _, ok := c.getEntry(id)
	return cl, ok
}

// getEntry is get, also returning the client's rendered directory entry
// (nil when not cached with one).
func (c *cache) getEntry(id string) (store.Client, []byte, bool) {
	if c == nil {
		return store.Client{}, nil, false
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
		return store.Client{}, nil, false
	}
	return store.Client{ID: id, Password: e.password, ChannelID: e.channel}, e.body, true
}

// put caches a client, with its rendered directory entry (body, nil:
// none); when full, an arbitrary entry makes room.
func (c *cache) put(cl store.Client, body []byte) {
	if c == nil {
		return
	}
	e := cacheEntry{password: cl.Password, channel: cl.ChannelID, body: body, expires: c.now().Add(c.ttl)}
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

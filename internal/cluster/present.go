package cluster

// Present returns every user with live connections anywhere in the
// cluster (id@domain), when this node can vouch for the list: it is the
// leader, connected to NATS, has heard every live node (an expiry has
// passed since its start and since any stall), and holds every peer's
// whole membership. Otherwise ok is false and the list is nil.
//
// The application clears what the list disproves: connected times of
// clients that no process holds (left behind by processes that died
// without reporting their disconnects, e.g. a whole cluster killed).
func (n *Node) Present() (users map[string]bool, ok bool) {
	if !n.connected.Load() || n.clk.now().Sub(n.started) < n.opts.Expiry || n.inGrace() {
		return nil, false
	}
	if n.unreadable.Load() != 0 {
		return nil, false // a peer it cannot read (an upgrade under way) may hold anybody
	}
	n.tbl.mu.RLock()
	vouch := n.tbl.leaderLocked(n.id)
	for _, p := range n.tbl.peers {
		vouch = vouch && p.synced
	}
	if !vouch { // (every node asks every second: only the leader collects)
		n.tbl.mu.RUnlock()
		return nil, false
	}
	users = map[string]bool{}
	for _, p := range n.tbl.peers {
		for uid := range p.users {
			users[uid] = true
		}
	}
	n.tbl.mu.RUnlock()
	// The published members and the changes not published yet, read
	// together (in flushLocal's lock order), so that none moving from
	// one to the other meanwhile is missed.
	n.pubMu.Lock()
	n.mu.Lock()
	for uid := range n.members {
		users[uid] = true
	}
	for _, m := range n.deltas {
		if m.Conns > 0 {
			users[m.UID] = true
		}
	}
	n.mu.Unlock()
	n.pubMu.Unlock()
	return users, true
}

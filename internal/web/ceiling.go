package web

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"channels/internal/config"
	"channels/internal/metrics"
)

// DefaultMaxStoredClients is the ceiling on stored clients, and on stored
// sessions, when Options leave it zero: -max-stored-clients's default.
//
// The budget of new clients per address (DefaultNewClientBurst, then one
// every DefaultNewClientEvery) bounds what one address stores: 8,640 clients
// and sessions a day, about 121,000 of each over a 14-day session lifetime
// when every client logs in (about 80 MB on SQLite). The number of
// addresses is not bounded (an IPv6 /48 holds 65,536 /64 budgets), so the
// ceiling bounds the whole: a client and its session take about 650 bytes
// on SQLite and 0.9 to 1.6 KB on PostgreSQL, so 250,000 keep them under
// about 160 MB and 220 to 400 MB. docs/OPERATIONS.md, "Stored visitors",
// has the measurement and what an attacker can still do.
const DefaultMaxStoredClients = config.DefaultMaxStoredClients

// storedCountAge is how long a count of the stored clients and sessions is
// trusted: new visitors are checked against it plus what this process has
// stored since, and it is read again from the database (two COUNT(*)s)
// when older. Deletions (the sweeper's, a channel's) show at the next
// count. storedLogEvery is the least time between two WARN lines about
// refusals.
const (
	storedCountAge     = time.Minute
	storedLogEvery     = time.Minute
	storedCountTimeout = 10 * time.Second
)

// storedMessage is what a visitor refused for the ceiling reads: nothing
// they did, nothing they can do but come back.
const storedMessage = "This server has too many visitors stored right now. Please try again later."

// storedRows is the number of clients and sessions in the database, as
// last counted plus those this process stored since, and the ceiling on
// each. It is approximate by design: rows other processes store and rows
// deleted show at the next count, and requests under way together may
// pass the ceiling by their number.
type storedRows struct {
	max int64

	mu      sync.Mutex // held while counting
	counted time.Time  // when last counted (the server's clock); guarded by mu

	clients, sessions atomic.Int64
	// refused counts refusals since the last WARN line, logged at
	// UnixNano (0: none yet).
	refused atomic.Int64
	logged  atomic.Int64
}

// storedCounts returns the stored clients and sessions, counted afresh
// when the last count is storedCountAge old (or from the future: the clock
// went back), and how long until the next count.
func (s *Server) storedCounts(ctx context.Context) (clients, sessions int64, next time.Duration, err error) {
	st := s.stored
	now := s.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.counted.IsZero() || now.Sub(st.counted) >= storedCountAge || now.Before(st.counted) {
		// Counted for every visitor waiting on st.mu: one that leaves
		// (a prefetch cancelled, a tab closed) does not cancel it.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storedCountTimeout)
		defer cancel()
		c, err := s.store.CountClients(ctx)
		if err != nil {
			return 0, 0, 0, err
		}
		n, err := s.store.CountSessions(ctx)
		if err != nil {
			return 0, 0, 0, err
		}
		st.clients.Store(c)
		st.sessions.Store(n)
		st.counted = now
	}
	return st.clients.Load(), st.sessions.Load(), st.counted.Add(storedCountAge).Sub(now), nil
}

// admitNewClient refuses, with a 503, a view that would store a new
// client — and, with newSession, a new session — while the database holds
// the ceiling of clients (or of sessions). Signed-in users are never
// refused; nor are visitors whose session names their client, who never
// get here (channelAndClient). It is checked before anything is written.
// The refusal is not the visitor's doing: it is logged at WARN once a
// minute at most, without the visitor's address, under a message the
// fail2ban filter of docs/OPERATIONS.md does not read.
func (s *Server) admitNewClient(r *http.Request, newSession bool) error {
	if _, signedIn := s.currentUser(r); signedIn {
		return nil
	}
	ctx := r.Context()
	clients, sessions, next, err := s.storedCounts(ctx)
	if err != nil {
		return fmt.Errorf("count stored clients: %w", err)
	}
	limit := s.stored.max
	if clients < limit && (!newSession || sessions < limit) {
		return nil
	}
	s.metrics.RateLimited(metrics.LimitStoredClients)
	s.stored.refused.Add(1)
	if now, last := s.now().UnixNano(), s.stored.logged.Load(); (last == 0 || now-last >= int64(storedLogEvery)) &&
		s.stored.logged.CompareAndSwap(last, now) {
		s.log.WarnContext(ctx, "stored clients at the ceiling: new visitors refused",
			"clients", clients, "sessions", sessions, "max", limit, "refused", s.stored.refused.Swap(0))
	}
	return &statusError{status: http.StatusServiceUnavailable, message: storedMessage, retryAfter: next}
}

// noteStored counts a client this process stored, and the session it
// started when newSession.
func (s *Server) noteStored(newSession bool) {
	s.stored.clients.Add(1)
	if newSession {
		s.stored.sessions.Add(1)
	}
}

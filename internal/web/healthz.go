package web

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"channels/internal/store"
)

// healthCheckEvery is how long /healthz reuses its last write check: load
// balancers polling every process many times a second cost the database
// one small commit a second.
const healthCheckEvery = time.Second

// healthCheck is the last write check of /healthz: when it was made and
// what it found. Checks that arrive while one is under way wait for it.
type healthCheck struct {
	mu     sync.Mutex
	at     time.Time
	reason string // "": the database took the write
}

// healthz answers 200 "ok" while the database answers and can take a
// write, 503 with a short reason otherwise: "database unavailable" when it
// does not answer, "disk full" when the file system of a SQLite database
// is (nearly) full, "database cannot write" when a write fails. The write
// check (store.CheckWrite) is made at most once every healthCheckEvery.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	reason := ""
	if err := s.store.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "health check failed", "err", err)
		reason = "database unavailable"
	} else {
		reason = s.writeCheck(ctx)
	}
	if reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(reason + "\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

// writeCheck returns why the database cannot take a write ("" if it can),
// checking again when the last check is healthCheckEvery old. A change is
// logged once, not on every check: WARN when writes start failing, INFO
// when they work again.
func (s *Server) writeCheck(ctx context.Context) string {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := time.Now(); !h.at.IsZero() && now.Sub(h.at) < healthCheckEvery {
		return h.reason
	}
	err := s.store.CheckWrite(ctx)
	reason := ""
	switch {
	case err == nil:
	case errors.Is(err, store.ErrDiskFull):
		reason = "disk full"
	case ctx.Err() != nil:
		// Too slow to tell (the database's write lock held long, or a
		// client that went away): not remembered as the answer.
		s.log.WarnContext(ctx, "health check: write check unfinished", "err", err)
		return "database cannot write"
	default:
		reason = "database cannot write"
	}
	switch {
	case reason != "" && h.reason == "":
		s.log.WarnContext(ctx, "health check failed: "+reason, "err", err)
	case reason == "" && h.reason != "" && !h.at.IsZero():
		s.log.InfoContext(ctx, "health check passes again: the database takes writes")
	}
	h.at, h.reason = time.Now(), reason
	return reason
}

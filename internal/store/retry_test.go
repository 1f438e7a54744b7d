package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestTerminatedConnectionsRetried: when PostgreSQL ends every session
// (pg_terminate_backend, as a fast restart does, SQLSTATE 57P01), the
// pooled connections are all dead; the reads and writes of the login path
// run once more on a fresh connection instead of failing.
func TestTerminatedConnectionsRetried(t *testing.T) {
	srv := storetest.PrivatePostgres(t)
	b := srv.Store(t)
	s := b.Store
	ctx := context.Background()
	ch, c := storetest.ChannelWithClient(t, s)
	admin, err := sql.Open("pgx", srv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for round := range 3 {
		// Several pooled connections, all used within the last second
		// (pgx pings only connections idle longer).
		warm(t, s, c.ID, 8)
		if _, err := admin.ExecContext(ctx,
			`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'`); err != nil {
			t.Fatal(err)
		}
		before := s.Retries()
		if _, err := s.ClientByID(ctx, c.ID); err != nil {
			t.Fatalf("round %d: read after the sessions were ended: %v", round, err)
		}
		if err := s.ClientLoggedIn(ctx, c.ID, "192.0.2.1:1", time.Now()); err != nil {
			t.Fatalf("round %d: write after the sessions were ended: %v", round, err)
		}
		if _, err := s.ClientDisconnected(ctx, c.ID, "192.0.2.1:1"); err != nil {
			t.Fatalf("round %d: disconnect after the sessions were ended: %v", round, err)
		}
		if _, err := s.Moderation(ctx, ch.ID); err != nil {
			t.Fatalf("round %d: moderation after the sessions were ended: %v", round, err)
		}
		if s.Retries() == before {
			t.Errorf("round %d: no statement was retried; the test did not end the pooled sessions", round)
		}
	}
}

// TestFastRestartRetried: "pg_ctl restart -m fast" under a steady load of
// the login path's statements costs no errors once the server is back.
func TestFastRestartRetried(t *testing.T) {
	srv := storetest.PrivatePostgres(t)
	s := srv.Store(t).Store
	ctx := context.Background()
	_, c := storetest.ChannelWithClient(t, s)
	warm(t, s, c.ID, 16)
	srv.Restart()
	// The server is back: every statement from now on must succeed, though
	// every pooled connection was ended by the restart.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 4 {
				if _, err := s.ClientByID(ctx, c.ID); err != nil {
					errs <- fmt.Errorf("worker %d read %d: %w", i, j, err)
					return
				}
				if err := s.ClientLoggedIn(ctx, c.ID, "192.0.2.1:1", time.Now()); err != nil {
					errs <- fmt.Errorf("worker %d write %d: %w", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("statements retried: %d", s.Retries())
}

// TestUnavailable: with the server stopped, the store's errors say the
// database is unavailable; answers of a running database do not.
func TestUnavailable(t *testing.T) {
	srv := storetest.PrivatePostgres(t)
	s := srv.Store(t).Store
	ctx := context.Background()
	if _, err := s.ClientByID(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, store.ErrNotFound) || store.IsUnavailable(err) {
		t.Fatalf("unknown client: %v (unavailable %v)", err, store.IsUnavailable(err))
	}
	srv.Stop("fast")
	_, err := s.ClientByID(ctx, "00000000-0000-0000-0000-000000000000")
	if err == nil || !store.IsUnavailable(err) || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("with the server stopped: %v (unavailable %v)", err, store.IsUnavailable(err))
	}
}

// warm uses n pooled connections at once, so that the pool holds n.
func warm(t *testing.T, s *store.Store, id string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if _, err := s.ClientByID(context.Background(), id); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

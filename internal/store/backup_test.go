package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// committed records what the writers of TestBackupUnderLoad committed, in
// order.
type committed struct {
	mu       sync.Mutex
	users    []string
	channels []string
	sessions []string
}

func (c *committed) snapshot() (users, channels, sessions []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.users...), append([]string(nil), c.channels...), append([]string(nil), c.sessions...)
}

// TestBackupUnderLoad backs up a SQLite database while goroutines keep
// adding users, channels, clients and sessions through the store, then
// opens the backup as a restored service would and checks it: SQLite's
// integrity check passes, foreign keys hold, and every row committed
// before the backup began is there.
func TestBackupUnderLoad(t *testing.T) {
	ctx := context.Background()
	b := storetest.SQLite(t)
	s := b.Store

	// Some bulk first (about 8 MiB of sessions), so the copy takes long
	// enough for writers to commit while it runs.
	data := bytes.Repeat([]byte("s"), 4096)
	for i := range 2000 {
		if err := s.Sessions().CommitCtx(ctx, fmt.Sprintf("bulk-%d", i), data, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	var c committed
	var writes atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch i % 3 {
				case 0:
					name := fmt.Sprintf("user-%d-%d", w, i)
					if _, err = s.CreateUser(ctx, name, "hash", false); err == nil {
						c.mu.Lock()
						c.users = append(c.users, name)
						c.mu.Unlock()
					}
				case 1:
					var ch store.Channel
					if ch, err = s.CreateChannel(ctx, fmt.Sprintf("topic %d %d", w, i), i%2 == 0, 0); err == nil {
						_, err = s.CreateClient(ctx, ch.ID)
					}
					if err == nil {
						c.mu.Lock()
						c.channels = append(c.channels, ch.ID)
						c.mu.Unlock()
					}
				case 2:
					token := fmt.Sprintf("session-%d-%d", w, i)
					if err = s.Sessions().CommitCtx(ctx, token, data[:512], time.Now().Add(time.Hour)); err == nil {
						c.mu.Lock()
						c.sessions = append(c.sessions, token)
						c.mu.Unlock()
					}
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				writes.Add(1)
			}
		})
	}
	// Let the writers get going.
	for writes.Load() < 200 {
		time.Sleep(time.Millisecond)
	}

	users, channels, sessions := c.snapshot()
	before := writes.Load()
	dest := filepath.Join(t.TempDir(), "backup.db")
	res, err := store.Backup(ctx, b.URL, dest, store.BackupOptions{})
	during := writes.Load() - before
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup of %d bytes in %v; %d writes committed while it ran; %d users, %d channels, %d sessions committed before",
		res.Bytes, res.Took, during, len(users), len(channels), len(sessions))
	if during == 0 {
		t.Error("no write committed while the backup ran: it did not run under load")
	}
	if st, err := os.Stat(dest); err != nil || st.Size() != res.Bytes || st.Size() < 8<<20 {
		t.Fatalf("backup file: %v, %v; result says %d bytes", st, err, res.Bytes)
	}

	// The raw file: integrity and foreign keys.
	raw, err := sql.Open("sqlite", "file:"+dest+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var integrity string
	if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check = %q, %v", integrity, err)
	}
	rows, err := raw.Query(`PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Error("foreign_key_check reports violations")
	}
	rows.Close()

	// Restored: opened as the service opens its database.
	restored, err := store.Open(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	for _, name := range users {
		if _, err := restored.UserByName(ctx, name); err != nil {
			t.Fatalf("user %s committed before the backup: %v", name, err)
		}
	}
	for _, id := range channels {
		if _, err := restored.ChannelByID(ctx, id); err != nil {
			t.Fatalf("channel %s committed before the backup: %v", id, err)
		}
	}
	for _, token := range append(sessions, "bulk-0", "bulk-1999") {
		if _, ok, err := restored.Sessions().FindCtx(ctx, token); !ok || err != nil {
			t.Fatalf("session %s committed before the backup: %v, %v", token, ok, err)
		}
	}
	// And the restored database takes writes.
	if _, err := restored.CreateUser(ctx, "after-restore", "hash", true); err != nil {
		t.Fatal(err)
	}
}

func TestBackupFiles(t *testing.T) {
	ctx := context.Background()
	b := storetest.SQLite(t)
	if _, err := b.Store.CreateUser(ctx, "alice", "hash", true); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dest := filepath.Join(dir, "channels.db.bak")

	// A new file, owner-only, nothing else left behind.
	res, err := store.Backup(ctx, b.URL, dest, store.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Source != b.URL || res.Path != dest || res.Bytes == 0 {
		t.Errorf("result = %+v", res)
	}
	st, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("backup mode %v, want 0600: it holds password hashes", perm)
	}
	wantOnly(t, dir, "channels.db.bak")

	// An existing file is kept unless overwriting is asked for.
	if err := os.WriteFile(dest, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Backup(ctx, b.URL, dest, store.BackupOptions{}); !errors.Is(err, store.ErrBackupExists) {
		t.Fatalf("backup over an existing file: %v, want ErrBackupExists", err)
	}
	if got, _ := os.ReadFile(dest); string(got) != "keep me" {
		t.Fatalf("the existing file changed: %q", got)
	}
	wantOnly(t, dir, "channels.db.bak")
	if _, err := store.Backup(ctx, b.URL, dest, store.BackupOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	restored, err := store.Open(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restored.UserByName(ctx, "alice"); err != nil {
		t.Errorf("overwritten backup lacks alice: %v", err)
	}
	restored.Close()

	// A stopped service's database (no -wal or -shm file beside it) is
	// backed up too, and left as it was.
	stopped := filepath.Join(t.TempDir(), "stopped.db")
	st2, err := store.Open(ctx, stopped)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st2.CreateUser(ctx, "bob", "hash", false); err != nil {
		t.Fatal(err)
	}
	st2.Close()
	wantOnly(t, filepath.Dir(stopped), "stopped.db")
	if _, err := store.Backup(ctx, "sqlite:"+stopped, filepath.Join(dir, "stopped.bak"), store.BackupOptions{}); err != nil {
		t.Fatalf("backup of a stopped database: %v", err)
	}
	wantOnly(t, filepath.Dir(stopped), "stopped.db")
	os.Remove(filepath.Join(dir, "stopped.bak"))

	// A missing database is an error, and is not created.
	missing := filepath.Join(t.TempDir(), "none.db")
	if _, err := store.Backup(ctx, missing, filepath.Join(dir, "x.db"), store.BackupOptions{}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("backup of a missing database: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing database was created: %v", err)
	}

	// Not a Channels database: refused, nothing written.
	other := filepath.Join(t.TempDir(), "other.db")
	if db, err := sql.Open("sqlite", other); err != nil {
		t.Fatal(err)
	} else {
		if _, err := db.Exec(`CREATE TABLE t (x)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	if _, err := store.Backup(ctx, other, filepath.Join(dir, "y.db"), store.BackupOptions{}); err == nil || !strings.Contains(err.Error(), "not a Channels database") {
		t.Errorf("backup of a foreign database: %v", err)
	}
	wantOnly(t, dir, "channels.db.bak")

	// The database itself is never the destination.
	if _, err := store.Backup(ctx, b.URL, b.URL, store.BackupOptions{Overwrite: true}); err == nil {
		t.Error("backup onto the database itself succeeded")
	}

	// PostgreSQL is pg_dump's job.
	if _, err := store.Backup(ctx, "postgres://u@h/db", dest, store.BackupOptions{Overwrite: true}); err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("backup of PostgreSQL: %v", err)
	}
}

// wantOnly fails unless dir holds exactly the named files.
func wantOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

func TestDialectOf(t *testing.T) {
	for url, want := range map[string]store.Dialect{
		"postgres://u@h/db":   store.Postgres,
		"postgresql://u@h/db": store.Postgres,
		"data/channels.db":    store.SQLite,
		"sqlite:/var/x.db":    store.SQLite,
	} {
		if got := store.DialectOf(url); got != want {
			t.Errorf("DialectOf(%q) = %s, want %s", url, got, want)
		}
	}
}

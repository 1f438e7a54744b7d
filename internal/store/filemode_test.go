package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"channels/internal/store"
)

// TestSQLiteFilesPrivate: a new SQLite database and its WAL and shared
// memory files are readable by their owner only (they hold password
// hashes and session keys); a file the operator made keeps its mode.
func TestSQLiteFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "channels.db")
	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateChannel(t.Context(), "Private", true, 0); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s: mode %v, want no access for group and others", filepath.Base(f), m)
		}
	}

	shared := filepath.Join(dir, "shared.db")
	if err := os.WriteFile(shared, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o640); err != nil { // whatever the umask
		t.Fatal(err)
	}
	st2, err := store.Open(t.Context(), shared)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if fi, err := os.Stat(shared); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("an operator's file: mode %v (%v), want 0640 kept", fi.Mode().Perm(), err)
	}
}

package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"channels/internal/store/storetest"
)

// TestBackupCommand backs up the database of an open store (as of a
// running service) through the command line and restores the copy.
func TestBackupCommand(t *testing.T) {
	b := storetest.SQLite(t)
	if _, err := b.Store.CreateUser(t.Context(), "alice", "hash", true); err != nil {
		t.Fatal(err)
	}
	vars := dbVars(b.URL)
	out := filepath.Join(t.TempDir(), "backup.db")

	code, stdout, stderr := execute(t, vars, "backup", "-out", out)
	if code != 0 || stderr != "" {
		t.Fatalf("backup: exit %d, stderr %q", code, stderr)
	}
	if !regexp.MustCompile(`^Backed up .*channels\.db to .*backup\.db: \d+\.\d KiB in \d+m?s\.\n$`).MatchString(stdout) {
		t.Errorf("backup says %q", stdout)
	}
	code, _, stderr = execute(t, vars, "backup", "-out", out)
	if code != 1 || !strings.Contains(stderr, "exists; give -overwrite") {
		t.Errorf("backup over a file: exit %d, stderr %q", code, stderr)
	}
	if _, err := b.Store.CreateUser(t.Context(), "bob", "hash", false); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = execute(t, vars, "backup", "-overwrite", "-out", out); code != 0 {
		t.Fatalf("backup -overwrite: exit %d, stderr %q", code, stderr)
	}

	// Restored as the README says: the file becomes the database of a
	// data directory.
	dataDir := t.TempDir()
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "channels.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = execute(t, map[string]string{"CHANNELS_DATA_DIR": dataDir}, "user", "list")
	if code != 0 || !strings.Contains(stdout, "alice") || !strings.Contains(stdout, "bob") {
		t.Errorf("user list of the restored database: exit %d, %q, %q", code, stdout, stderr)
	}
}

// TestBackupPostgres: for PostgreSQL the command says how pg_dump does it,
// never echoing the password, and fails, so no script takes it for a
// backup.
func TestBackupPostgres(t *testing.T) {
	for _, url := range []string{
		"postgres://app:hunter2@db.internal:5432/channels?sslmode=require",
		"postgresql://app@db.internal/channels?password=hunter2&sslmode=disable",
	} {
		code, stdout, stderr := execute(t, dbVars(url), "backup", "-out", "/backups/channels 1.dump")
		if code != 1 || stdout != "" {
			t.Errorf("%s: exit %d, stdout %q", url, code, stdout)
		}
		if strings.Contains(stderr, "hunter2") {
			t.Errorf("the advice shows the password:\n%s", stderr)
		}
		for _, want := range []string{"pg_dump --format=custom --file='/backups/channels 1.dump' 'postgres", "app@db.internal", "pg_restore", "PGPASSWORD"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("the advice lacks %q:\n%s", want, stderr)
			}
		}
	}
	// A URL without a password needs no word about one.
	_, _, stderr := execute(t, dbVars("postgres://app@db/channels"), "backup", "-out", "x.dump")
	if strings.Contains(stderr, "PGPASSWORD") || !strings.Contains(stderr, "pg_dump --format=custom --file=x.dump postgres://app@db/channels\n") {
		t.Errorf("advice for a URL without a password:\n%s", stderr)
	}
}

func TestByteSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 9437184: "9.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

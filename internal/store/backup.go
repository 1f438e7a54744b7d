package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrBackupExists is returned by Backup when the destination exists and
// BackupOptions.Overwrite is false.
var ErrBackupExists = errors.New("backup file already exists")

// DialectOf reports which database a database URL names, as Open would
// choose: PostgreSQL for postgres:// and postgresql:// URLs, SQLite for
// anything else.
func DialectOf(databaseURL string) Dialect {
	if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		return Postgres
	}
	return SQLite
}

// BackupOptions configure Backup.
type BackupOptions struct {
	// Overwrite lets the backup replace an existing file; without it an
	// existing destination is ErrBackupExists and is left alone.
	Overwrite bool
}

// BackupResult describes a finished backup.
type BackupResult struct {
	// Source is the database file that was copied.
	Source string
	// Path is the backup file.
	Path string
	// Bytes is the size of the backup file.
	Bytes int64
	// Took is how long the copy and its checks took.
	Took time.Duration
}

// Backup writes a consistent copy of the SQLite database named by
// databaseURL to dest while other connections and processes (a running
// service) keep reading and writing it. The copy is what a transaction
// starting at the call sees: every row committed before Backup was called,
// and nothing half-written.
//
// It opens the database on a connection of its own, without migrating or
// creating it, and runs SQLite's VACUUM INTO, which only reads it (a read
// transaction: in WAL mode writers are not blocked). The copy goes
// to a temporary file beside dest, readable by its owner only (it holds
// password hashes and session keys), is checked with PRAGMA quick_check,
// synced, and only then takes dest's name, so dest is either the old file
// or a whole, checked backup — never a partial one.
//
// PostgreSQL databases are not backed up here (pg_dump does that): Backup
// refuses them.
func Backup(ctx context.Context, databaseURL, dest string, opts BackupOptions) (BackupResult, error) {
	start := time.Now()
	if DialectOf(databaseURL) != SQLite {
		return BackupResult{}, errors.New("backup: PostgreSQL databases are backed up with pg_dump")
	}
	src := strings.TrimPrefix(databaseURL, "sqlite:")
	res := BackupResult{Source: src, Path: dest}
	if src == "" {
		return res, errors.New("backup: empty database path")
	}
	if dest == "" {
		return res, errors.New("backup: empty destination path")
	}
	if st, err := os.Stat(src); err != nil {
		return res, fmt.Errorf("backup: database %s: %w", src, err)
	} else if !st.Mode().IsRegular() {
		return res, fmt.Errorf("backup: database %s is not a regular file", src)
	}
	if same, err := sameFile(src, dest); err == nil && same {
		return res, fmt.Errorf("backup: %s is the database itself", dest)
	}
	if !opts.Overwrite {
		// Checked again, atomically, when the backup takes its name; this
		// early look only saves copying a large database for nothing.
		if _, err := os.Lstat(dest); err == nil {
			return res, fmt.Errorf("backup: %s: %w", dest, ErrBackupExists)
		}
	}

	// An absolute name: VACUUM INTO must not read it as a URI.
	dir, err := filepath.Abs(filepath.Dir(dest))
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return res, fmt.Errorf("backup: create temporary file: %w", err)
	}
	tmpPath := tmp.Name()
	tmp.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(tmpPath)
			os.Remove(tmpPath + "-journal")
		}
	}()

	if err := vacuumInto(ctx, src, tmpPath); err != nil {
		return res, err
	}
	if err := quickCheck(ctx, tmpPath); err != nil {
		return res, err
	}
	// VACUUM INTO writes its output without syncing it: sync before the
	// rename makes the backup durable under its final name.
	if err := syncFile(tmpPath); err != nil {
		return res, fmt.Errorf("backup: sync %s: %w", tmpPath, err)
	}
	if err := publish(tmpPath, dest, opts.Overwrite); err != nil {
		return res, err
	}
	done = true
	if err := syncDir(filepath.Dir(dest)); err != nil {
		return res, fmt.Errorf("backup: sync directory of %s: %w", dest, err)
	}
	st, err := os.Stat(dest)
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	res.Bytes = st.Size()
	res.Took = time.Since(start)
	return res, nil
}

// sqliteFileURI is the URI of the SQLite file at path with query
// parameters, so SQLite applies its own (mode=ro) and any character of the
// path is escaped.
func sqliteFileURI(path, params string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(abs), RawQuery: params}
	return u.String(), nil
}

// vacuumInto copies the database at src into the empty file dst.
func vacuumInto(ctx context.Context, src, dst string) error {
	// mode=rw: never create the database. Not read-only: a read-only
	// connection to a stopped service's database would leave behind the
	// -wal and -shm files it has to create, owned by whoever ran the
	// backup (root, say), which the service's own user then could not
	// write; a read-write connection removes them when it closes last. The
	// busy timeout covers the moments a writer holds the WAL index lock.
	uri, err := sqliteFileURI(src, "mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return fmt.Errorf("backup: open %s: %w", src, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return fmt.Errorf("backup: read %s: %w", src, err)
	}
	if n == 0 {
		return fmt.Errorf("backup: %s is not a Channels database (no schema_migrations table)", src)
	}
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("backup: copy %s: %w", src, err)
	}
	return nil
}

// quickCheck runs SQLite's quick_check on the file at path.
func quickCheck(ctx context.Context, path string) error {
	uri, err := sqliteFileURI(path, "mode=ro")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return fmt.Errorf("backup: open the copy: %w", err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&res); err != nil {
		return fmt.Errorf("backup: check the copy: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("backup: the copy fails its check: %s", res)
	}
	return nil
}

// publish gives the finished file tmp the name dest: with overwrite by a
// rename, which replaces dest atomically; without by a hard link, which
// fails if dest appeared meanwhile, so nothing is ever overwritten.
func publish(tmp, dest string, overwrite bool) error {
	if overwrite {
		if err := os.Rename(tmp, dest); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		return nil
	}
	err := os.Link(tmp, dest)
	switch {
	case err == nil:
		os.Remove(tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("backup: %s: %w", dest, ErrBackupExists)
	}
	// A file system without hard links: check, then rename (a file that
	// appears in between is replaced).
	if _, serr := os.Lstat(dest); serr == nil {
		return fmt.Errorf("backup: %s: %w", dest, ErrBackupExists)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// sameFile reports whether a and b are the same existing file.
func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes a rename in dir durable. Some systems cannot sync a
// directory; the rename has happened either way, so that is not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

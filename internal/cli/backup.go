package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"channels/internal/store"
)

func backupSetup(fs *flag.FlagSet) func(context.Context, call) error {
	out := fs.String("out", "", "`FILE` to write the backup to (required)")
	overwrite := fs.Bool("overwrite", false, "replace FILE if it exists")
	return func(ctx context.Context, c call) error { return backup(ctx, c, *out, *overwrite) }
}

// backup copies the SQLite database to out, or for PostgreSQL says how
// pg_dump does it.
func backup(ctx context.Context, c call, out string, overwrite bool) error {
	if err := wantArgs(c.args, 0, ""); err != nil {
		return err
	}
	if out == "" {
		return usagef("missing -out FILE")
	}
	db := c.cfg.Database()
	if store.DialectOf(db) == store.Postgres {
		return errors.New(pgDumpAdvice(db, out))
	}
	res, err := store.Backup(ctx, db, out, store.BackupOptions{Overwrite: overwrite})
	if errors.Is(err, store.ErrBackupExists) {
		return fmt.Errorf("%s exists; give -overwrite to replace it", out)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "Backed up %s to %s: %s in %s.\n", res.Source, res.Path, byteSize(res.Bytes), res.Took.Round(time.Millisecond))
	return nil
}

// pgDumpAdvice tells how to back up the PostgreSQL database at dbURL into
// out with pg_dump, and restore it: the commands to run, with the URL's
// password (in its user information or its query) left out, since what a
// command prints ends up in terminals and logs.
func pgDumpAdvice(dbURL, out string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "PostgreSQL databases are backed up with pg_dump (the database URL does not parse: check -database-url)"
	}
	hidden := false
	if _, ok := u.User.Password(); ok {
		u.User = url.User(u.User.Username())
		hidden = true
	}
	if q := u.Query(); q.Has("password") {
		q.Del("password")
		u.RawQuery = q.Encode()
		hidden = true
	}
	target := shellQuote(u.String())
	var b strings.Builder
	fmt.Fprintf(&b, "the database is PostgreSQL: back it up with pg_dump, which makes a consistent copy while the service runs:\n")
	fmt.Fprintf(&b, "  pg_dump --format=custom --file=%s %s\n", shellQuote(out), target)
	fmt.Fprintf(&b, "Restore into an empty database, with the service stopped:\n")
	fmt.Fprintf(&b, "  pg_restore --no-owner --dbname=%s %s", target, shellQuote(out))
	if hidden {
		fmt.Fprintf(&b, "\nThe password is left out: give it in PGPASSWORD or ~/.pgpass")
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+,=", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// byteSize formats n bytes for people: 512 B, 9.0 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}

package cli

import (
	"path/filepath"
	"strings"

	"channels/internal/config"
	"channels/internal/store"
)

// startedByGoRun reports whether program (os.Args[0]) is a binary that
// "go run" built: those live in an exe directory under the go-build
// temporary directory, and vanish when the process ends.
func startedByGoRun(program string) bool {
	dir := filepath.Dir(program)
	return filepath.Base(dir) == "exe" && strings.Contains(dir, "go-build")
}

// commandLine returns how to run the channels command cmd with the
// arguments rest the way this
// process was started, for hints in messages: "go run ./cmd/channels" after
// go run (there is no binary to run), otherwise the program as it was
// invoked. Settings that locate the database and differ from the defaults
// are repeated as flags, since a command typed in another shell may not see
// the service's CHANNELS_* variables; a PostgreSQL URL is not, because it
// may hold a password.
func commandLine(program string, cfg config.Config, cmd, rest string) string {
	prog := program
	switch {
	case program == "":
		prog = "channels"
	case startedByGoRun(program):
		prog = "go run ./cmd/channels"
	}
	var where string
	def := config.Default()
	switch {
	case cfg.DatabaseURL != "" && store.DialectOf(cfg.DatabaseURL) == store.SQLite:
		where = " -database-url " + shellQuote(cfg.DatabaseURL)
	case cfg.DatabaseURL == "" && cfg.DataDir != def.DataDir:
		where = " -data-dir " + shellQuote(cfg.DataDir)
	}
	return prog + " " + cmd + where + " " + rest
}

// Package cli is the channels command: its subcommands (serve, migrate,
// user, channel, freeswitch-config) and the assembly of the application
// (app.go). cmd/channels calls Main and nothing else.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"channels/internal/config"
)

// Env is what a command sees of its process: standard streams and the
// environment. Tests fill it with buffers.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// Main runs the command line of the process and returns its exit status:
// 0 on success, 2 for usage errors, 1 otherwise. SIGINT and SIGTERM cancel
// the command's context, which makes serve shut down gracefully.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Run(ctx, os.Args[1:], Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(*usageError)):
		fmt.Fprintf(os.Stderr, "channels: %v\n", err)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "channels: %v\n", err)
		return 1
	}
}

// usageError is a command line that makes no sense.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

const usage = `Channels: peer-to-peer voice and video calls in the browser.

Usage:
  channels [serve] [flags]                 run the web service (the default)
  channels migrate [flags]                 apply database migrations
  channels user add [--admin] NAME         add a user (password from stdin or a prompt)
  channels user set-password NAME          change a user's password
  channels user list                       list users
  channels channel add [--private] [--owner NAME] TOPIC
  channels channel list                    list channels
  channels channel remove ID               delete a channel and its clients
  channels freeswitch-config [--out DIR]   write the FreeSWITCH configuration pack

Every command takes the configuration flags (channels serve -help lists
them); each flag can also be set as a CHANNELS_* environment variable.
`

// Run runs one command line (without the program name).
func Run(ctx context.Context, args []string, env Env) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, env)
	case "migrate":
		return migrate(ctx, args, env)
	case "user":
		return userCmd(ctx, args, env)
	case "channel":
		return channelCmd(ctx, args, env)
	case "freeswitch-config":
		return freeswitchConfig(ctx, args, env)
	case "help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	}
	fmt.Fprint(env.Stderr, usage)
	return usagef("unknown command %q", cmd)
}

// loadConfig builds the configuration from defaults, CHANNELS_* variables
// and the flags in args, which may be interleaved with positional
// arguments; extra adds a command's own flags. It returns the positional
// arguments.
func loadConfig(name string, args []string, env Env, extra func(*flag.FlagSet)) (config.Config, []string, error) {
	l := config.NewLoader(name, env.Getenv)
	fs := l.FlagSet
	fs.SetOutput(env.Stderr)
	if extra != nil {
		extra(fs)
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return l.Config, nil, err
			}
			return l.Config, nil, usagef("%s: %v", name, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	// Validated once, after the environment and the flags: a flag mends a
	// bad environment variable.
	cfg, err := l.Finish()
	if err != nil {
		return cfg, nil, fmt.Errorf("configuration: %w", err)
	}
	return cfg, pos, nil
}

// newLogger makes the process's logger as configured.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	switch cfg.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// wantArgs checks the number of positional arguments.
func wantArgs(name string, pos []string, n int, what string) error {
	if len(pos) != n {
		return usagef("usage: channels %s %s", name, what)
	}
	return nil
}

// writeTable prints the output of a list command: header, then row(x) for
// each item, tab-separated and aligned in columns.
func writeTable[T any](w io.Writer, header string, items []T, row func(T) string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, x := range items {
		fmt.Fprintln(tw, row(x))
	}
	return tw.Flush()
}

// listTime is how list commands print a time: UTC, to the minute.
func listTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") }

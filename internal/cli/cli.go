// Package cli is the channels command: its subcommands (serve, migrate,
// backup, user, channel, freeswitch-config, help) and the assembly of the
// application (app.go). cmd/channels calls Main and nothing else.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"channels/internal/config"
)

// Env is what a command sees of its process: standard streams, the
// environment, and the name it was started by. Tests fill it with buffers.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Program is os.Args[0], from which the hints a command prints tell
	// how to run the program again (see program.go).
	Program string
}

// Main runs the command line of the process and returns its exit status:
// 0 on success, 2 for usage errors, 1 otherwise. SIGINT and SIGTERM cancel
// the command's context, which makes serve shut down gracefully.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Execute(ctx, os.Args[1:], Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Program: os.Args[0]})
}

// Execute runs one command line (without the program name), reports its
// error on env.Stderr, and returns the exit status as Main does.
func Execute(ctx context.Context, args []string, env Env) int {
	err := Run(ctx, args, env)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		i := slices.IndexFunc(commands(), func(c command) bool { return c.name == ue.cmd })
		switch {
		case ue.cmd == "":
			fmt.Fprintf(env.Stderr, "channels: %s\nRun \"channels help\" for the commands.\n", ue.msg)
		case i < 0: // a group
			fmt.Fprintf(env.Stderr, "channels %s: %s\nRun \"channels %s -h\" for its commands.\n", ue.cmd, ue.msg, ue.cmd)
		default:
			c := commands()[i]
			fmt.Fprintf(env.Stderr, "channels %s: %s\nUsage: channels %s\nRun \"channels %s -h\" for details.\n",
				c.name, ue.msg, strings.TrimSpace(c.name+" "+c.synopsis), c.name)
		}
		return 2
	default:
		fmt.Fprintf(env.Stderr, "channels: %v\n", err)
		return 1
	}
}

// usageError is a command line that makes no sense; cmd names the command
// it was meant for, if that is known.
type usageError struct{ cmd, msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// call is one run of a command: its configuration, positional arguments
// and process.
type call struct {
	cfg  config.Config
	args []string
	env  Env
}

// command is one subcommand.
type command struct {
	name     string // "user add"
	synopsis string // what follows the name in its usage line: "[-admin] NAME"
	args     string // its positional arguments, for the overview: "NAME"
	summary  string // one line for the overview
	about    string // what -h says besides the flags
	// config names the configuration flags the command reads (it takes
	// only those); allConfig gives it every one.
	config    []string
	allConfig bool
	// setup defines the command's own flags on fs and returns the function
	// that runs it with their values.
	setup func(fs *flag.FlagSet) func(context.Context, call) error
}

// commands lists every command, in the order the overview shows them.
func commands() []command {
	// Where the database is: what every command that opens it reads.
	db := []string{"data-dir", "database-url"}
	plain := func(run func(context.Context, call) error) func(*flag.FlagSet) func(context.Context, call) error {
		return func(*flag.FlagSet) func(context.Context, call) error { return run }
	}
	return []command{
		{
			name: "serve", synopsis: "[flags]", summary: "run the web service (the default command)",
			about: "Serves the web app, /fsapi and the embedded Verto hub until SIGINT or SIGTERM,\n" +
				"migrating the database first. Every flag can also be set as a CHANNELS_*\n" +
				"environment variable; flags win.",
			allConfig: true, setup: plain(serve),
		},
		{
			name: "migrate", summary: "apply pending database migrations and exit",
			about:  "Serve migrates at start-up too; run this to migrate before starting new processes.",
			config: db, setup: plain(withStore(migrate)),
		},
		{
			name: "backup", synopsis: "-out FILE [-overwrite]", args: "-out FILE", summary: "copy the SQLite database, also while the service runs",
			about: "Writes a consistent copy of the SQLite database to FILE while the service\n" +
				"keeps running. FILE must not exist unless -overwrite is given. To restore:\n" +
				"stop the service, delete the database's -wal and -shm files, copy FILE over\n" +
				"the database (DATA_DIR/channels.db or the -database-url file), start it.\n" +
				"For PostgreSQL it prints the pg_dump command to run instead.",
			config: db, setup: backupSetup,
		},
		{
			name: "user add", synopsis: "[-admin] NAME", args: "NAME", summary: "add a user who can sign in and manage channels",
			about: "Reads the password at a prompt, or from the first line of stdin when stdin is\n" +
				"not a terminal. Callers need no account: only people who manage channels do.",
			config: db, setup: userAddSetup,
		},
		{
			name: "user set-password", synopsis: "NAME", args: "NAME", summary: "change a user's password",
			about:  "Reads the password as user add does.",
			config: db, setup: plain(userSetPassword),
		},
		{name: "user list", summary: "list users", config: db, setup: plain(withStore(userList))},
		{
			name: "channel add", synopsis: "[-private] [-owner NAME] TOPIC", args: "TOPIC", summary: "add a channel and print its id and URL",
			about:  "The topic is the rest of the command line. A public channel is listed on the\nfront page; a private one is reached only by its URL.",
			config: slices.Concat(db, []string{"base-url"}), setup: channelAddSetup,
		},
		{name: "channel list", summary: "list channels", config: db, setup: plain(withStore(channelList))},
		{name: "channel remove", synopsis: "ID", args: "ID", summary: "delete a channel and its clients", config: db, setup: plain(channelRemove)},
		{
			name: "freeswitch-config", synopsis: "[-out DIR] [-fsapi-url URL]", summary: "write the FreeSWITCH configuration pack",
			about:  "See docs/FREESWITCH.md. CHANNELS_FSAPI_PASSWORD (or -fsapi-password) must be set.",
			config: []string{"listen", "base-url", "domain", "fsapi-user", "fsapi-password", "log-level"},
			setup:  freeswitchSetup,
		},
	}
}

const overviewHead = `Channels: peer-to-peer voice and video calls in the browser.

Usage: channels [COMMAND] [FLAGS] [ARGUMENTS]

Commands:
`

const overviewTail = `
"channels COMMAND -h" shows a command's flags and arguments. Settings are
flags or CHANNELS_* environment variables (flags win); "channels serve -h"
lists them all.

Callers need no account: anyone with a channel's URL can join it. Accounts
("channels user add") are for the people who create and manage channels.
`

// writeOverview prints the list of commands, all or those of one group
// ("user").
func writeOverview(w io.Writer, cmds []command, group string) {
	if group == "" {
		fmt.Fprint(w, overviewHead)
	} else {
		fmt.Fprintf(w, "Usage: channels %s COMMAND [FLAGS] [ARGUMENTS]\n\nCommands:\n", group)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range cmds {
		if group == "" || strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
		}
	}
	if group == "" {
		fmt.Fprintf(tw, "  help [COMMAND]\tshow this, or what a command takes\n")
	}
	tw.Flush()
	if group == "" {
		fmt.Fprint(w, overviewTail)
	} else {
		fmt.Fprintf(w, "\n\"channels %s COMMAND -h\" shows a command's flags and arguments.\n", group)
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}

// Run runs one command line (without the program name). Asked for help
// (-h, help), it prints it on env.Stdout and returns nil.
func Run(ctx context.Context, args []string, env Env) error {
	cmds := commands()
	switch {
	case len(args) > 0 && isHelp(args[0]):
		writeOverview(env.Stdout, cmds, "")
		return nil
	case len(args) > 0 && args[0] == "help":
		return help(ctx, cmds, args[1:], env)
	case len(args) == 0 || strings.HasPrefix(args[0], "-"):
		args = append([]string{"serve"}, args...)
	}
	c, n, group, err := lookup(cmds, args)
	if group != "" && len(args) > 1 && isHelp(args[1]) {
		writeOverview(env.Stdout, cmds, group)
		return nil
	}
	if err != nil {
		return err
	}
	return c.run(ctx, args[n:], env)
}

// lookup finds the command args start with and how many words name it.
// When args start with a group of commands ("user") but name none of
// them, it reports the group with the error.
func lookup(cmds []command, args []string) (c command, n int, group string, err error) {
	for _, c := range cmds {
		if c.name == args[0] {
			return c, 1, "", nil
		}
	}
	var subs []string
	for _, c := range cmds {
		if g, sub, ok := strings.Cut(c.name, " "); ok && g == args[0] {
			if len(args) > 1 && args[1] == sub {
				return c, 2, "", nil
			}
			subs = append(subs, sub)
		}
	}
	switch {
	case len(subs) == 0:
		return command{}, 0, "", usagef("unknown command %q", args[0])
	case len(args) == 1:
		return command{}, 0, args[0], &usageError{cmd: args[0], msg: "missing command: want " + orList(subs)}
	}
	return command{}, 0, args[0], &usageError{cmd: args[0], msg: fmt.Sprintf("unknown command %q; want %s", args[1], orList(subs))}
}

// help serves "channels help [COMMAND]".
func help(ctx context.Context, cmds []command, args []string, env Env) error {
	if len(args) == 0 {
		writeOverview(env.Stdout, cmds, "")
		return nil
	}
	c, n, group, err := lookup(cmds, args)
	switch {
	case group != "" && len(args) == 1:
		writeOverview(env.Stdout, cmds, group)
		return nil
	case err != nil:
		return err
	case n != len(args):
		return usagef("help takes one command, got %q", strings.Join(args, " "))
	}
	return c.run(ctx, []string{"-h"}, env)
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// run parses the command's arguments and runs it; for -h it prints the
// command's help instead.
func (c command) run(ctx context.Context, args []string, env Env) error {
	run, cl, err := c.parse(args, env)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err == nil {
		err = run(ctx, cl)
	}
	if ue := (*usageError)(nil); errors.As(err, &ue) && ue.cmd == "" {
		ue.cmd = c.name
	}
	return err
}

// parse builds the command's configuration from defaults, CHANNELS_*
// variables and the flags in args, which may be interleaved with
// positional arguments. The command takes its own flags and the
// configuration flags it reads, nothing else. On -h it prints the help
// and returns flag.ErrHelp.
func (c command) parse(args []string, env Env) (func(context.Context, call) error, call, error) {
	l := config.NewLoader("channels "+c.name, env.Getenv)
	fs := flag.NewFlagSet("channels "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	run := c.setup(fs)
	var own []string
	fs.VisitAll(func(f *flag.Flag) { own = append(own, f.Name) })
	conf := c.configFlags(l.FlagSet)
	for _, name := range conf {
		f := l.FlagSet.Lookup(name)
		// Set through the loader's own flag set, so Finish knows which
		// settings the command line gave.
		fs.Var(forward{l.FlagSet, f}, name, f.Usage)
	}

	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.writeHelp(env.Stdout, fs, own, l.FlagSet, conf)
				return nil, call{}, err
			}
			return nil, call{}, &usageError{cmd: c.name, msg: err.Error()}
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
		return nil, call{}, fmt.Errorf("configuration: %w", err)
	}
	return run, call{cfg: cfg, args: pos, env: env}, nil
}

// configFlags returns the names of the configuration flags the command
// takes, as defined in all.
func (c command) configFlags(all *flag.FlagSet) []string {
	if c.allConfig {
		var names []string
		all.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		return names
	}
	return c.config
}

// writeHelp prints the command's usage line, what it does, its own flags
// and the configuration flags it takes.
func (c command) writeHelp(w io.Writer, fs *flag.FlagSet, own []string, conf *flag.FlagSet, confNames []string) {
	fmt.Fprintf(w, "Usage: channels %s\n", strings.TrimSpace(c.name+" "+c.synopsis))
	fmt.Fprintf(w, "\n%s.\n", upperFirst(c.summary))
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", c.about)
	}
	if len(own) > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs, own)
	}
	if len(confNames) > 0 {
		fmt.Fprint(w, "\nConfiguration flags (each also a CHANNELS_* variable, as named):\n")
		printFlags(w, conf, confNames)
	}
}

// printFlags prints the named flags of fs as flag.PrintDefaults does,
// except that credentials in their values, which come from the
// environment, are never shown (see shownValue).
func printFlags(w io.Writer, fs *flag.FlagSet, names []string) {
	p := flag.NewFlagSet("", flag.ContinueOnError)
	p.SetOutput(w)
	for _, name := range names {
		f := fs.Lookup(name)
		p.Var(f.Value, f.Name, f.Usage)
		pf := p.Lookup(name)
		shown, ok := shownValue(name, f.DefValue)
		pf.DefValue = shown
		if !ok {
			pf.Usage += " (set; not shown)"
		}
	}
	p.PrintDefaults()
}

// secret reports whether a flag holds a secret whose value help must not
// print.
func secret(name string) bool {
	return strings.Contains(name, "password") || strings.Contains(name, "secret")
}

// urlSecret reports whether a flag holds URLs that may carry credentials
// (postgres://user:password@…, nats://user:password@… or nats://token@…):
// help shows them masked, or not at all when they do not parse.
func urlSecret(name string) bool { return name == "database-url" || name == "cluster-url" }

// masked stands for a credential in help, as in url.URL.Redacted.
const masked = "xxxxx"

// shownValue is how help shows the value of a configuration flag, which
// may come from the environment: as it is, with the credentials in it
// masked (a URL's user information and password=… parameters, in each
// item of a comma-separated list), or (ok false) not at all: the values of
// secrets, and values of urlSecret flags that do not parse as URLs.
func shownValue(name, value string) (shown string, ok bool) {
	switch {
	case value == "":
		return "", true
	case secret(name):
		return "", false
	}
	items := strings.Split(value, ",")
	for i, item := range items {
		r, parsed := maskCredentials(item)
		if !parsed && urlSecret(name) {
			return "", false
		}
		items[i] = r
	}
	return strings.Join(items, ","), true
}

// secretParam matches a key=value pair whose key names a credential, in
// a query string or a key/value connection string.
var secretParam = regexp.MustCompile(`(?i)((?:^|[?&;\s])[\w.-]*(?:pass|secret|token)[\w.-]*=)[^&;\s]*`)

// maskCredentials masks the credentials in one value: the user
// information of a URL (a user alone too: NATS takes a token there),
// anything before an "@" in what is not such a URL (user:pass@turn:…),
// and credential parameters. parsed reports whether s is a URL.
func maskCredentials(s string) (shown string, parsed bool) {
	u, err := url.Parse(s)
	switch {
	case err == nil && u.User != nil:
		if _, hasPassword := u.User.Password(); hasPassword {
			u.User = url.UserPassword(u.User.Username(), masked)
		} else {
			u.User = url.User(masked)
		}
		s = u.String()
	case strings.Contains(s, "@"):
		s = masked + s[strings.LastIndex(s, "@"):]
	}
	return secretParam.ReplaceAllString(s, "${1}"+masked), err == nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// forward is a configuration flag on a command's flag set: setting it sets
// the flag of the configuration loader's set.
type forward struct {
	set *flag.FlagSet
	f   *flag.Flag
}

func (v forward) Set(s string) error { return v.set.Set(v.f.Name, s) }

func (v forward) String() string {
	if v.f == nil { // the zero value flag's help output makes
		return ""
	}
	return v.f.Value.String()
}

func (v forward) IsBoolFlag() bool {
	b, ok := v.f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
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

// wantArgs checks the number of positional arguments; what names them.
func wantArgs(pos []string, n int, what string) error {
	switch {
	case len(pos) < n:
		return usagef("missing %s", what)
	case len(pos) > n && n == 0:
		return usagef("takes no arguments, got %q", strings.Join(pos, " "))
	case len(pos) > n:
		return usagef("takes one %s, got %q", what, strings.Join(pos, " "))
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

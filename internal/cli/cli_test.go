package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"channels/internal/config"
	"channels/internal/password"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// run runs a command line with the given environment and stdin and
// returns its output.
func run(t *testing.T, vars map[string]string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errOut,
		Getenv: func(k string) string { return vars[k] },
	}
	err := Run(t.Context(), args, env)
	return out.String(), errOut.String(), err
}

func dbVars(url string) map[string]string { return map[string]string{"CHANNELS_DATABASE_URL": url} }

func TestUserAndChannelCommands(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			vars := dbVars(b.URL)
			must := func(stdin string, args ...string) string {
				t.Helper()
				out, errOut, err := run(t, vars, stdin, args...)
				if err != nil {
					t.Fatalf("%q: %v\n%s", args, err, errOut)
				}
				return out
			}
			must("first password\n", "user", "add", "--admin", "root")
			must("second password", "user", "add", "bob")                 // no newline, as from printf
			must("third password\r\n", "user", "add", "carol", "--admin") // flags after the name

			ctx := t.Context()
			for name, want := range map[string]struct {
				pw    string
				admin bool
			}{"root": {"first password", true}, "bob": {"second password", false}, "carol": {"third password", true}} {
				u, err := b.Store.UserByName(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := password.Verify(want.pw, u.PasswordHash); !ok || err != nil || u.Admin != want.admin {
					t.Errorf("%s: admin %v, password ok %v (%v)", name, u.Admin, ok, err)
				}
			}

			must("a new password\n", "user", "set-password", "bob")
			u, _ := b.Store.UserByName(ctx, "bob")
			if ok, _ := password.Verify("a new password", u.PasswordHash); !ok {
				t.Error("set-password did not change the password")
			}

			list := must("", "user", "list")
			if !strings.Contains(list, "bob ") || !strings.Contains(list, "root ") || !strings.Contains(list, "true") {
				t.Errorf("user list:\n%s", list)
			}
			if strings.Contains(list, "argon2") {
				t.Errorf("user list shows password hashes:\n%s", list)
			}

			out := must("", "channel", "add", "--private", "--owner", "bob", "Bob's", "room")
			id, _, _ := strings.Cut(out, "\t")
			ch, err := b.Store.ChannelByID(ctx, id)
			if err != nil || ch.Topic != "Bob's room" || ch.Public || ch.OwnerID != u.ID {
				t.Errorf("channel add made %+v, %v (output %q)", ch, err, out)
			}
			pub := must("", "channel", "add", "Open")
			if list := must("", "channel", "list"); !strings.Contains(list, id) || !strings.Contains(list, "Open") {
				t.Errorf("channel list:\n%s", list)
			}
			must("", "channel", "remove", id)
			if _, err := b.Store.ChannelByID(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("after remove: %v", err)
			}
			if !strings.Contains(pub, "/c/") {
				t.Errorf("channel add prints no URL: %q", pub)
			}
		})
	}
}

// TestBadCommandLines: every mistake is an error that says what is wrong,
// and changes nothing.
func TestBadCommandLines(t *testing.T) {
	b := storetest.SQLite(t)
	vars := dbVars(b.URL)
	if _, _, err := run(t, vars, "good password\n", "user", "add", "alice"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		usage bool
		want  string
	}{
		{"unknown command", "", []string{"frobnicate"}, true, "unknown command"},
		{"user without subcommand", "", []string{"user"}, true, "missing command"},
		{"unknown user subcommand", "", []string{"user", "delete", "x"}, true, "unknown command"},
		{"user add without name", "good password\n", []string{"user", "add"}, true, "NAME"},
		{"user add two names", "good password\n", []string{"user", "add", "a", "b"}, true, "NAME"},
		{"user name with space", "good password\n", []string{"user", "add", "a b"}, true, "spaces"},
		{"user name too long", "good password\n", []string{"user", "add", strings.Repeat("n", 65)}, true, "at most 64"},
		{"user name invalid utf-8", "good password\n", []string{"user", "add", "\xff"}, true, "valid text"},
		{"empty password", "", []string{"user", "add", "bob"}, true, "at least 8"},
		{"short password", "short\n", []string{"user", "add", "bob"}, true, "at least 8"},
		{"long password", strings.Repeat("p", 2000), []string{"user", "add", "bob"}, true, "at most 1024"},
		{"password flag", "good password\n", []string{"user", "add", "--password", "x", "bob"}, true, "not defined"},
		{"user exists", "good password\n", []string{"user", "add", "alice"}, false, "already exists"},
		{"set password of nobody", "good password\n", []string{"user", "set-password", "nobody"}, false, "no user"},
		{"channel without subcommand", "", []string{"channel"}, true, "missing command"},
		{"channel add no topic", "", []string{"channel", "add"}, true, "TOPIC"},
		{"channel add blank topic", "", []string{"channel", "add", "  "}, true, "must not be empty"},
		{"channel add long topic", "", []string{"channel", "add", strings.Repeat("t", 101)}, true, "at most 100"},
		{"channel add unknown owner", "", []string{"channel", "add", "--owner", "nobody", "T"}, false, "no user"},
		{"channel remove bad id", "", []string{"channel", "remove", "lobby"}, true, "not a channel id"},
		{"channel remove unknown id", "", []string{"channel", "remove", "0b6f1c1e-5d43-4a6e-9d1e-8e1f4b3c2a10"}, false, "no channel"},
		{"channel remove no id", "", []string{"channel", "remove"}, true, "ID"},
		{"serve with argument", "", []string{"serve", "now"}, true, "no arguments"},
		{"bad flag value", "", []string{"serve", "--session-lifetime", "forever"}, true, "invalid value"},
		{"bad base URL", "", []string{"channel", "add", "--base-url", "ftp://x", "T"}, false, "base URL"},
		{"flag the command does not read", "", []string{"migrate", "--base-url", "http://x"}, true, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, err := run(t, vars, tt.stdin, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if isUsage := errors.As(err, new(*usageError)); isUsage != tt.usage {
				t.Errorf("usage error %v, want %v: %v", isUsage, tt.usage, err)
			}
			if !strings.Contains(err.Error()+errOut, tt.want) {
				t.Errorf("error %q (stderr %q) lacks %q", err, errOut, tt.want)
			}
		})
	}
	users, err := b.Store.ListUsers(t.Context())
	if err != nil || len(users) != 1 {
		t.Errorf("users after bad command lines: %+v, %v", users, err)
	}
}

func TestMigrateAndHelp(t *testing.T) {
	dir := t.TempDir()
	out, _, err := run(t, map[string]string{"CHANNELS_DATA_DIR": filepath.Join(dir, "new")}, "", "migrate")
	if err != nil || !strings.Contains(out, "sqlite database is up to date") {
		t.Errorf("migrate: %q, %v", out, err)
	}
	if out, _, err := run(t, nil, "", "help"); err != nil || !strings.Contains(out, "user add") {
		t.Errorf("help: %q, %v", out, err)
	}
	if out, _, err := run(t, nil, "", "serve", "-help"); err != nil || !strings.Contains(out, "-listen") {
		t.Errorf("serve -help: %q, %v", out, err)
	}
}

// TestServe runs the service twice on one SQLite file: the first start
// creates the Lobby and says how to make an administrator; data written in
// between (by the user command) is there after the restart; SIGINT-style
// cancellation shuts down gracefully.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"CHANNELS_DATA_DIR": dir}
	start := func() (string, func() (string, string)) {
		addr := freeAddr(t)
		v := map[string]string{"CHANNELS_LISTEN": addr, "CHANNELS_BASE_URL": "http://" + addr}
		for k, x := range vars {
			v[k] = x
		}
		ctx, cancel := context.WithCancel(t.Context())
		var out, errOut syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, nil, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return v[k] }})
		}()
		base := "http://" + addr
		waitHealthy(t, base, done)
		return base, func() (string, string) {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v\n%s", err, errOut.String())
			}
			return out.String(), errOut.String()
		}
	}

	base, stop := start()
	index := get(t, base+"/")
	out, logs := stop()
	if !strings.Contains(index, "Lobby") {
		t.Errorf("index of a fresh site lacks Lobby:\n%s", index)
	}
	if !strings.Contains(out, "Open "+base+"/ in your browser") {
		t.Errorf("stdout %q lacks the URL", out)
	}
	// The hint names the data directory: a shell without the service's
	// CHANNELS_* variables would use another.
	if !strings.Contains(logs, "channels user add -data-dir "+dir+" --admin NAME") {
		t.Errorf("logs lack the admin hint:\n%s", logs)
	}

	if _, errOut, err := run(t, vars, "good password\n", "user", "add", "--admin", "root"); err != nil {
		t.Fatal(err, errOut)
	}
	if _, errOut, err := run(t, vars, "", "channel", "add", "Written between runs"); err != nil {
		t.Fatal(err, errOut)
	}
	// A client left marked connected, as by a process that died without a
	// graceful shutdown: the next start with the embedded hub clears it.
	stale := markConnected(t, filepath.Join(dir, "channels.db"))

	base, stop = start()
	index = get(t, base+"/")
	_, logs = stop()
	if strings.Count(index, "Lobby") != 1 || !strings.Contains(index, "Written between runs") {
		t.Errorf("index after restart:\n%s", index)
	}
	if strings.Contains(logs, "--admin NAME") {
		t.Errorf("admin hint repeated although there is an administrator:\n%s", logs)
	}
	if c := clientOf(t, filepath.Join(dir, "channels.db"), stale); !c.Connected.IsZero() {
		t.Errorf("client %s still marked connected after a restart with the embedded hub", stale)
	}
}

// markConnected adds a client to the first channel of the database and
// marks it connected; it returns the client's id.
func markConnected(t *testing.T, db string) string {
	t.Helper()
	st, err := store.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	chs, err := st.Channels(t.Context())
	if err != nil || len(chs) == 0 {
		t.Fatalf("channels: %v, %v", chs, err)
	}
	c, err := st.CreateClient(t.Context(), chs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetClientConnected(t.Context(), c.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func clientOf(t *testing.T, db, id string) store.Client {
	t.Helper()
	st, err := store.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.ClientByID(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAssemble checks that each part of the application answers at its
// path.
func TestAssemble(t *testing.T) {
	b := storetest.SQLite(t)
	cfg := config.Default()
	cfg.FSAPIPassword = "gateway secret"
	h, shutdown, err := Assemble(t.Context(), cfg, b.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t.Context())
	srv := newTestServer(t, h)
	tests := []struct {
		method, path string
		want         int
		contentType  string
	}{
		{"GET", "/", 200, "text/html"},
		{"GET", "/healthz", 200, "text/plain"},
		{"GET", "/nope", 404, "text/html"},
		{"POST", "/fsapi", 401, ""}, // no credentials
		{"GET", "/verto", 426, ""},  // not a WebSocket upgrade
		{"GET", "/static/nope.css", 404, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.contentType) {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.want, tt.contentType)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(t *testing.T, base string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve ended early: %v", err)
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("service did not become healthy")
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFreeSWITCHConfig(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"CHANNELS_DATA_DIR": dir, "CHANNELS_FSAPI_PASSWORD": "gateway secret", "CHANNELS_LISTEN": "0.0.0.0:9090"}
	out, errOut, err := run(t, vars, "", "freeswitch-config", "--out", filepath.Join(dir, "fs"))
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if !strings.Contains(out, "http://127.0.0.1:9090/fsapi") {
		t.Errorf("output %q", out)
	}
	xml, err := os.ReadFile(filepath.Join(dir, "fs", "autoload_configs", "xml_curl.conf.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(xml), "http://127.0.0.1:9090/fsapi") || !strings.Contains(string(xml), "gateway secret") {
		t.Errorf("xml_curl.conf.xml lacks the URL or credentials:\n%s", xml)
	}

	delete(vars, "CHANNELS_FSAPI_PASSWORD")
	if _, _, err := run(t, vars, "", "freeswitch-config", "--out", filepath.Join(dir, "fs2")); err == nil || !strings.Contains(err.Error(), "FSAPI_PASSWORD") {
		t.Errorf("without a password: %v", err)
	}
}

// TestFreeSWITCHLogLevel: freeswitch-config maps -log-level to
// FreeSWITCH's level names the way FromConfig does, whether the level
// comes from a flag or the environment.
func TestFreeSWITCHLogLevel(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"default", "", nil, "info"},
		{"flag debug", "", []string{"-log-level", "debug"}, "debug"},
		{"flag warn", "", []string{"-log-level", "warn"}, "warning"},
		{"flag error", "", []string{"-log-level", "error"}, "err"},
		{"environment debug", "debug", nil, "debug"},
		{"flag over environment", "error", []string{"-log-level", "debug"}, "debug"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, strconv.Itoa(i))
			vars := map[string]string{"CHANNELS_FSAPI_PASSWORD": "pw", "CHANNELS_LOG_LEVEL": tt.env}
			args := append([]string{"freeswitch-config", "--out", out}, tt.args...)
			if _, errOut, err := run(t, vars, "", args...); err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			b, err := os.ReadFile(filepath.Join(out, "vars.xml"))
			if err != nil {
				t.Fatal(err)
			}
			if want := `console_loglevel=` + tt.want + `"`; !strings.Contains(string(b), want) {
				t.Errorf("vars.xml lacks %s:\n%s", want, b)
			}
		})
	}
}

// TestFlagsWinOverEnvironment: a flag replaces a bad CHANNELS_* variable,
// and the configuration is validated once, after both.
func TestFlagsWinOverEnvironment(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // an error to expect; "" for success
	}{
		{"bad base URL mended by flag", map[string]string{"CHANNELS_BASE_URL": "bad"}, []string{"-base-url", "http://x:1"}, ""},
		{"bad base URL", map[string]string{"CHANNELS_BASE_URL": "bad"}, nil, "base URL"},
		{"bad flag over good environment", map[string]string{"CHANNELS_BASE_URL": "http://x:1"}, []string{"-base-url", "bad"}, "base URL"},
		{"unparsable duration mended by flag", map[string]string{"CHANNELS_SESSION_LIFETIME": "soon"}, []string{"-session-lifetime", "2h"}, ""},
		{"unparsable duration", map[string]string{"CHANNELS_SESSION_LIFETIME": "soon"}, nil, "CHANNELS_SESSION_LIFETIME"},
		{"bad log level mended by flag", map[string]string{"CHANNELS_LOG_LEVEL": "loud"}, []string{"-log-level", "debug"}, ""},
		{"bad verto URL emptied by flag", map[string]string{"CHANNELS_VERTO_URL": "http://x"}, []string{"-verto-url="}, ""},
		{"bad network mended by flag", map[string]string{"CHANNELS_FSAPI_NETWORKS": "nope"}, []string{"-fsapi-networks", "10.0.0.0/8"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"CHANNELS_DATA_DIR": dir}
			maps.Copy(vars, tt.env)
			// serve's parsing, which takes every configuration flag,
			// without serving.
			i := slices.IndexFunc(commands(), func(c command) bool { return c.name == "serve" })
			var out bytes.Buffer
			_, _, err := commands()[i].parse(tt.args, Env{Stdout: &out, Stderr: &out, Getenv: func(k string) string { return vars[k] }})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("%v\n%s", err, out.String())
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestTrustedProxies checks the wiring of -trusted-proxies: behind a
// trusted proxy the sign-in limit counts the addresses in X-Forwarded-For;
// without it, the header is ignored and every attempt counts against the
// peer.
func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name      string
		trusted   string
		otherFree bool // another forwarded address still gets through
	}{
		{"trusted", "127.0.0.0/8,::1", true},
		{"not trusted", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			var err error
			if cfg.TrustedProxies, err = config.ParsePrefixes(tc.trusted); err != nil {
				t.Fatal(err)
			}
			h, shutdown, err := Assemble(t.Context(), cfg, storetest.SQLite(t).Store, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer shutdown(t.Context())
			base := newTestServer(t, h)
			signIn := func(from, name string) int {
				req, err := http.NewRequest(http.MethodPost, base+"/signin", strings.NewReader("name="+name+"&password=wrong"))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Forwarded-For", from)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				return res.StatusCode
			}
			limited := false
			for i := range 20 {
				if signIn("198.51.100.1", "user"+strconv.Itoa(i)) == http.StatusTooManyRequests {
					limited = true
					break
				}
			}
			if !limited {
				t.Fatal("20 sign-ins from one address were never limited")
			}
			other := signIn("198.51.100.2", "another")
			if got := other != http.StatusTooManyRequests; got != tc.otherFree {
				t.Errorf("sign-in from another forwarded address: status %d", other)
			}
		})
	}
}

// TestSeedOnce: processes starting together on a new database create one
// Lobby between them, and a later start does not bring it back once the
// operator has removed it.
func TestSeedOnce(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			logger := slog.New(slog.DiscardHandler)
			errs := make(chan error, 4)
			for range 4 {
				go func() {
					st, err := store.Open(ctx, b.URL)
					if err != nil {
						errs <- err
						return
					}
					defer st.Close()
					errs <- seed(ctx, st, logger, "channels user add --admin NAME")
				}()
			}
			for range 4 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			chs, err := b.Store.Channels(ctx)
			if err != nil || len(chs) != 1 || chs[0].Topic != "Lobby" {
				t.Fatalf("channels after 4 concurrent first starts = %+v, %v", chs, err)
			}
			if err := b.Store.DeleteChannel(ctx, chs[0].ID); err != nil {
				t.Fatal(err)
			}
			if err := seed(ctx, b.Store, logger, "channels user add --admin NAME"); err != nil {
				t.Fatal(err)
			}
			if n, _ := b.Store.CountChannels(ctx); n != 0 {
				t.Errorf("a later start recreated the Lobby: %d channels", n)
			}
		})
	}
}

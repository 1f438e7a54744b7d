package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"channels/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/usage")

// execute runs a command line as Main does and returns its exit status and
// output.
func execute(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Execute(t.Context(), args, Env{
		Stdin:  strings.NewReader(""),
		Stdout: &out,
		Stderr: &errOut,
		Getenv: func(k string) string { return vars[k] },
	})
	return code, out.String(), errOut.String()
}

// TestUsage runs command lines a newcomer types — asking for help, or
// getting something wrong — and compares exit status, stdout and stderr
// with the golden files in testdata/usage (go test -update rewrites them).
// None of them may open a database: the working directory is empty and
// must stay so.
func TestUsage(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, argv := range []string{
		"help",
		"user -h",
		"channel --help",
		"help channel",
		"migrate -h",
		"backup -h",
		"user add -h",
		"user set-password -help",
		"user list -h",
		"channel add -h",
		"help channel list",
		"channel remove -h",
		"freeswitch-config -h",
		"serve -listen",
		"-listen",
		"-nonsense",
		"frobnicate",
		"help frobnicate",
		"help user add extra",
		"user",
		"user delete alice",
		"channel",
		"user add",
		"user add alice bob",
		"user list -listen 127.0.0.1:1",
		"channel add",
		"channel remove",
		"backup",
		"backup -out",
		"serve now",
		// Credentials in the environment: help shows them masked.
		credentialsEnv + " serve -h",
		credentialsEnv + " migrate -h",
	} {
		t.Run(argv, func(t *testing.T) {
			// Leading NAME=value words are the environment, as in a shell.
			words, vars, env := strings.Fields(argv), map[string]string{}, ""
			for len(words) > 0 && strings.Contains(words[0], "=") {
				k, v, _ := strings.Cut(words[0], "=")
				vars[k], words, env = v, words[1:], "_env"
			}
			cmd := strings.Join(words, " ")
			code, out, errOut := execute(t, vars, words...)
			got := "$ " + argv[:len(argv)-len(cmd)] + "channels " + cmd +
				"\nexit " + strconv.Itoa(code) + "\n-- stdout --\n" + out + "-- stderr --\n" + errOut
			golden := filepath.Join(testdataDir, "usage", strings.NewReplacer(" ", "_", "-", "", ":", "_").Replace(cmd)+env+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("usage commands left %v in the working directory", entries)
	}
}

// credentialsEnv sets URLs with credentials in every form the
// configuration takes them: user and password, a password parameter, a
// NATS token as the user, a list.
const credentialsEnv = "CHANNELS_DATABASE_URL=postgres://app:hunter2@db.example:5432/channels?sslmode=require&password=pw-param " +
	"CHANNELS_CLUSTER_URL=nats://a:natspw@nats1.example:4222,nats://natstoken@nats2.example:4222"

// testdataDir is the package's testdata directory, absolute, since
// TestUsage changes the working directory.
var testdataDir = func() string {
	d, err := filepath.Abs("testdata")
	if err != nil {
		panic(err)
	}
	return d
}()

// TestHelpShowsEverything: every way of asking for the overview prints
// it, on stdout, with exit status 0; serve's help lists every
// configuration flag (including ones added later, which no golden file
// would know of); help never shows a secret taken from the environment.
func TestHelpShowsEverything(t *testing.T) {
	t.Chdir(t.TempDir())
	_, overview, _ := execute(t, nil, "help")
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		code, out, errOut := execute(t, nil, args...)
		if code != 0 || out != overview || errOut != "" {
			t.Errorf("%q: exit %d, stderr %q, stdout differs from channels help: %v", args, code, errOut, out != overview)
		}
	}
	for _, c := range commands() {
		if !strings.Contains(overview, "  "+c.name) {
			t.Errorf("the overview lacks %q", c.name)
		}
	}

	// Each value holds "secret" where its credential is; help may show
	// the rest.
	secrets := map[string]string{
		"CHANNELS_FSAPI_PASSWORD": "fsapi-secret-value",
		"CHANNELS_TURN_SECRET":    "turn-secret-value-0123456789",
		"CHANNELS_TURN_URLS":      "turn:turn.example.org:3478",
		"CHANNELS_ICE_SERVERS":    "alice:ice-secret-value@turn:turn.example.org",
		"CHANNELS_DATABASE_URL":   "postgres://app:db-secret@db.example/channels?sslmode=require&password=param-secret",
		"CHANNELS_CLUSTER_URL":    "nats://a:nats-secret@nats1.example:4222,nats://token-secret@nats2.example:4222",
	}
	code, out, errOut := execute(t, secrets, "serve", "-h")
	if code != 0 || errOut != "" {
		t.Fatalf("serve -h: exit %d, stderr %q", code, errOut)
	}
	all := config.Default()
	all.FlagSet("x").VisitAll(func(f *flag.Flag) {
		if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f.Name) + `\b`).MatchString(out) {
			t.Errorf("serve -h lacks -%s", f.Name)
		}
	})
	for _, c := range commands() {
		code, out2, _ := execute(t, secrets, append(strings.Fields(c.name), "-h")...)
		if code != 0 {
			t.Errorf("%s -h: exit %d", c.name, code)
		}
		out += out2
	}
	for k, v := range secrets {
		for _, w := range regexp.MustCompile(`[\w-]*secret[\w-]*`).FindAllString(v, -1) {
			if strings.Contains(out, w) {
				t.Errorf("help shows %s's %q", k, w)
			}
		}
	}
	for _, want := range []string{"postgres://app:xxxxx@db.example/channels", "nats1.example:4222", "nats2.example:4222"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q, the rest of a URL with a credential", want)
		}
	}
	if !strings.Contains(out, "(set; not shown)") {
		t.Error("help does not say the FSAPI password is set")
	}
}

func TestCommandLine(t *testing.T) {
	def := config.Default()
	dataDir := def
	dataDir.DataDir = "/var/lib/channels"
	sqliteURL := def
	sqliteURL.DatabaseURL = "/srv/my db.sqlite"
	pg := def
	pg.DatabaseURL = "postgres://app:hunter2@db/channels"
	for _, tc := range []struct {
		program string
		cfg     config.Config
		want    string
	}{
		{"", def, "channels user add --admin NAME"},
		{"channels", def, "channels user add --admin NAME"},
		{"./channels", def, "./channels user add --admin NAME"},
		{"/usr/local/bin/channels", dataDir, "/usr/local/bin/channels user add -data-dir /var/lib/channels --admin NAME"},
		{"/tmp/go-build1234567/b001/exe/channels", def, "go run ./cmd/channels user add --admin NAME"},
		{`C:\Users\a\AppData\Local\Temp\go-build99\b001\exe\channels.exe`, def, "go run ./cmd/channels user add --admin NAME"},
		{"/opt/exe/channels", sqliteURL, "/opt/exe/channels user add -database-url '/srv/my db.sqlite' --admin NAME"},
		{"channels", pg, "channels user add --admin NAME"},
	} {
		if filepath.Separator != '\\' && strings.Contains(tc.program, `\`) {
			continue // a Windows path means nothing elsewhere
		}
		if got := commandLine(tc.program, tc.cfg, "user add", "--admin NAME"); got != tc.want {
			t.Errorf("commandLine(%q) = %q, want %q", tc.program, got, tc.want)
		}
	}
}

// TestShownValue: what help shows of a configuration value.
func TestShownValue(t *testing.T) {
	for _, tc := range []struct {
		flag, value, want string
		hidden            bool
	}{
		{"listen", "127.0.0.1:8080", "127.0.0.1:8080", false},
		{"base-url", "https://meet.example.org", "https://meet.example.org", false},
		{"data-dir", "/var/lib/channels", "/var/lib/channels", false},
		{"database-url", "/srv/my db.sqlite", "/srv/my db.sqlite", false},
		{"database-url", "postgres://app:hunter2@db/channels", "postgres://app:xxxxx@db/channels", false},
		{"database-url", "postgres://app@db/channels?sslmode=disable&password=hunter2", "postgres://xxxxx@db/channels?sslmode=disable&password=xxxxx", false},
		{"database-url", "postgres://db/channels?PassWord=hunter2&sslpassword=x", "postgres://db/channels?PassWord=xxxxx&sslpassword=xxxxx", false},
		{"database-url", "postgres://app:hunter2@h1,h2/channels", "postgres://app:xxxxx@h1,h2/channels", false},
		// A password with a character that ends the host: no URL, hidden.
		{"database-url", "postgres://app:hun/ter2@db/channels", "", true},
		{"database-url", "host=db user=app password=hunter2", "host=db user=app password=xxxxx", false},
		{"cluster-url", "nats://a:natspw@n1:4222,tls://n2:4222", "nats://a:xxxxx@n1:4222,tls://n2:4222", false},
		{"cluster-url", "nats://s3cr3t-token@n1:4222", "nats://xxxxx@n1:4222", false},
		{"cluster-url", "nats://a:pw,with,commas@n1:4222", "", true},
		{"verto-url", "wss://u:pw@fs.example/verto", "wss://u:xxxxx@fs.example/verto", false},
		{"ice-servers", "alice:pw@turn:turn.example", "xxxxx@turn:turn.example", false},
		{"fsapi-password", "anything", "", true},
		{"turn-secret", "anything", "", true},
		{"fsapi-password", "", "", false},
	} {
		got, ok := shownValue(tc.flag, tc.value)
		if got != tc.want || ok == tc.hidden {
			t.Errorf("shownValue(%q, %q) = %q, %v; want %q, %v", tc.flag, tc.value, got, ok, tc.want, !tc.hidden)
		}
	}
}

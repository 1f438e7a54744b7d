//go:build unix

package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"channels/internal/cli"
	"channels/internal/store"
)

// attackers is how many hostile identities the tool's attacker uses, all
// from one address (the target: 4 must not push a channel of 300 above 2×
// its steady frames/s).
const attackers = 4

// BenchmarkPresenceLoad runs presence-load.mjs once against the served
// application: N members (CHANNELS_PRESENCE_N, default 300) in one channel,
// then the attacker. Run it with -benchtime 1x: one run takes minutes.
func BenchmarkPresenceLoad(b *testing.B) {
	n := 300
	if s := os.Getenv("CHANNELS_PRESENCE_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 2 {
			b.Fatalf("CHANNELS_PRESENCE_N=%q: want a number of members, at least 2", s)
		}
		n = v
	}
	opts := map[string]any{}
	if s := os.Getenv("CHANNELS_PRESENCE_OPTIONS"); s != "" {
		if err := json.Unmarshal([]byte(s), &opts); err != nil {
			b.Fatalf("CHANNELS_PRESENCE_OPTIONS: %v", err)
		}
	}
	for range b.N {
		r := runLoad(b, n, opts, os.Stderr)
		report(b, r)
	}
}

// TestPresenceLoad runs the tool with a few members and short windows: it
// checks that the tool still drives the shipped client, not any figure.
func TestPresenceLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 15 s")
	}
	r := runLoad(t, 6, map[string]any{
		"rampSeconds": 1, "convergeSeconds": 20, "settleSeconds": 0, "steadySeconds": 1,
		"joins": 1, "quietMs": 400, "newcomers": 1, "reloads": 1, "tabs": 1, "reloadsAgain": 0, "gapMs": 300,
		"listCapMs": 3000, "attackWarmupSeconds": 1, "attackStaggerMs": 200, "attackSteadySeconds": 1,
		"attackNewcomers": 1, "attackReloads": 1,
	}, tlogWriter{t})
	if !r.Ramp.Converged {
		t.Errorf("the members never all listed each other: %d pairs missing", r.Ramp.UnlistedPairs)
	}
	if len(r.Joins) != 1 || r.Joins[0].Frames == 0 || r.Attack == nil || r.Attack.Hellos.OK == 0 || r.Attack.Frames == 0 {
		t.Errorf("missing figures: %+v", r)
	}
	for what, l := range r.Listing {
		if l.ListsEveryone.Runs == 0 {
			t.Errorf("%s: no runs", what)
		}
	}
}

// result is the part of the tool's result reported here (the whole of it
// goes to the log).
type result struct {
	Members int `json:"members"`
	Ramp    struct {
		Converged     bool `json:"converged"`
		UnlistedPairs int  `json:"unlistedPairs"`
	} `json:"ramp"`
	Steady window `json:"steady"`
	Joins  []struct {
		Frames int `json:"frames"`
		Leave  struct {
			Frames int `json:"frames"`
		} `json:"leave"`
	} `json:"joins"`
	Listing map[string]listing `json:"listing"`
	Attack  *struct {
		window
		Ratio          float64            `json:"ratio"`
		FramesPerHello float64            `json:"framesPerHello"`
		Amplification  float64            `json:"amplification"`
		Listing        map[string]listing `json:"listing"`
		Hellos         struct {
			OK int `json:"ok"`
		} `json:"hellos"`
	} `json:"attack"`

	// hubCPU is the server process's CPU time over each window's wall
	// time, in percent of one core, by window name; measured here.
	hubCPU map[string]float64
}

type window struct {
	Frames         int     `json:"frames"`
	FramesPerSec   float64 `json:"framesPerSec"`
	BytesPerSec    float64 `json:"bytesPerSec"`
	LoadCPUPercent float64 `json:"loadCpuPercent"`
	Attacker       struct {
		HellosPerSec float64 `json:"hellosPerSec"`
	} `json:"attacker"`
}

type listing struct {
	ListsEveryone    times `json:"listsEveryone"`
	ListedByEveryone times `json:"listedByEveryone"`
}

type times struct {
	Runs   int      `json:"runs"`
	Missed int      `json:"missed"`
	P50    *float64 `json:"p50"` // nil: more than listCapMs
	P95    *float64 `json:"p95"`
}

// report hands the figures to the benchmark's output.
func report(b *testing.B, r result) {
	b.ReportMetric(0, "ns/op") // one run; the figures below are what counts
	b.ReportMetric(r.Steady.FramesPerSec, "steady-frames/s")
	b.ReportMetric(r.Steady.BytesPerSec/1e6, "steady-MB/s")
	b.ReportMetric(r.hubCPU["steady"], "steady-hub-cpu-%")
	if len(r.Joins) > 0 {
		// Medians: a join disturbed by a busy machine (pages dropped by the
		// hub as slow readers, and their hellos) is the odd one out.
		var joins, leaves []float64
		for _, j := range r.Joins {
			joins = append(joins, float64(j.Frames))
			leaves = append(leaves, float64(j.Leave.Frames))
		}
		b.ReportMetric(median(joins), "frames/join")
		b.ReportMetric(median(leaves), "frames/leave")
	}
	listings := func(prefix string, ls map[string]listing) {
		for _, what := range []string{"newcomer", "reload", "tab", "reloadAgain"} {
			l, ok := ls[what]
			if !ok || l.ListsEveryone.Runs == 0 {
				continue
			}
			// A percentile beyond the tool's cap is reported as -1.
			ms := func(p *float64) float64 {
				if p == nil {
					return -1
				}
				return *p
			}
			b.ReportMetric(ms(l.ListsEveryone.P50), prefix+what+"-p50-ms")
			b.ReportMetric(ms(l.ListsEveryone.P95), prefix+what+"-p95-ms")
			if l.ListsEveryone.Missed > 0 {
				b.ReportMetric(float64(l.ListsEveryone.Missed), prefix+what+"-missed")
			}
		}
	}
	listings("", r.Listing)
	if a := r.Attack; a != nil {
		b.ReportMetric(a.FramesPerSec, "attack-frames/s")
		b.ReportMetric(a.BytesPerSec/1e6, "attack-MB/s")
		b.ReportMetric(a.Ratio, "attack/steady")
		b.ReportMetric(r.hubCPU["attack"], "attack-hub-cpu-%")
		b.ReportMetric(a.Attacker.HellosPerSec, "attacker-hellos/s")
		b.ReportMetric(a.Amplification, "amplification")
		b.ReportMetric(a.LoadCPUPercent, "attack-load-cpu-%")
		listings("attack-", a.Listing)
	}
	b.ReportMetric(r.Steady.LoadCPUPercent, "steady-load-cpu-%")
}

// median is the middle of xs (the lower of the two middles).
func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[(len(xs)-1)/2]
}

// runLoad serves the application over a fresh SQLite database with one
// channel of n members (and the fresh clients and attackers the tool
// needs), runs presence-load.mjs against it with opts, and returns its
// result with the server's CPU in each measured window. The tool's
// progress goes to progress.
func runLoad(tb testing.TB, n int, opts map[string]any, progress io.Writer) result {
	tb.Helper()
	node := nodeOrSkip(tb)
	ctx := tb.Context()
	dir := tb.TempDir()
	db := filepath.Join(dir, "channels.db")

	// The channel and its clients, made before the server starts.
	st, err := store.Open(ctx, db)
	if err != nil {
		tb.Fatal(err)
	}
	ch, err := st.CreateChannel(ctx, "Presence load", true, 0)
	if err != nil {
		tb.Fatal(err)
	}
	type client struct {
		ID       string `json:"id"`
		Password string `json:"password"`
	}
	clients := func(k int) []client {
		out := make([]client, k)
		for i := range out {
			c, err := st.CreateClient(ctx, ch.ID)
			if err != nil {
				tb.Fatal(err)
			}
			out[i] = client{c.ID, c.Password}
		}
		return out
	}
	// Fresh clients: one per join, newcomer and newcomer under attack
	// (options as JSON has them: numbers are float64).
	if raw, err := json.Marshal(opts); err != nil || json.Unmarshal(raw, &opts) != nil {
		tb.Fatalf("options %v: not JSON", opts)
	}
	fresh := 0
	for k, def := range map[string]int{"joins": 3, "newcomers": 5, "attackNewcomers": 5} {
		if v, ok := opts[k].(float64); ok {
			fresh += int(v)
		} else if _, ok := opts[k]; ok {
			tb.Fatalf("option %s: want a number", k)
		} else {
			fresh += def
		}
	}
	cfg := map[string]any{
		"channel":   ch.ID,
		"members":   clients(n),
		"newcomers": clients(fresh),
		"attackers": clients(attackers),
		"options":   opts,
	}
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}

	// The application as `channels serve` runs it, in this process.
	addr := freeAddr(tb)
	base := "http://" + addr
	vars := map[string]string{
		"CHANNELS_LISTEN":       addr,
		"CHANNELS_BASE_URL":     base,
		"CHANNELS_DATABASE_URL": db,
		"CHANNELS_DATA_DIR":     dir,
		"CHANNELS_LOG_LEVEL":    "error",
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() {
		done <- cli.Run(sctx, []string{"serve"}, cli.Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: progress, Getenv: func(k string) string { return vars[k] }})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
	}()
	waitHealthy(tb, base, done)

	cfg["url"] = "ws://" + addr + "/verto"
	cfgPath := filepath.Join(dir, "load.json")
	raw, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		tb.Fatal(err)
	}

	args := append([]string{"--experimental-websocket"}, strings.Fields(os.Getenv("CHANNELS_PRESENCE_NODE_FLAGS"))...)
	cmd := exec.CommandContext(ctx, node, append(args, "presence-load.mjs", cfgPath)...)
	cmd.Stderr = progress
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	// Marks: the edges of the windows, where the server's CPU time is read.
	type at struct {
		wall time.Time
		cpu  time.Duration
	}
	marks := map[string]at{}
	var r result
	var whole json.RawMessage
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line struct {
			Mark   string          `json:"mark"`
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			tb.Errorf("presence-load: %v: %s", err, sc.Bytes())
			continue
		}
		if line.Mark != "" {
			marks[line.Mark] = at{time.Now(), cpuTime(tb)}
		}
		if line.Result != nil {
			whole = line.Result
		}
	}
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("presence-load: %v", err)
	}
	if whole == nil {
		tb.Fatal("presence-load gave no result")
	}
	if err := json.Unmarshal(whole, &r); err != nil {
		tb.Fatalf("presence-load result: %v", err)
	}
	tb.Logf("presence-load result: %s", whole)
	r.hubCPU = map[string]float64{}
	for k := range maps.Keys(marks) {
		name, ok := strings.CutSuffix(k, ":start")
		end, found := marks[name+":end"]
		if !ok || !found {
			continue
		}
		start := marks[k]
		r.hubCPU[name] = 100 * float64(end.cpu-start.cpu) / float64(end.wall.Sub(start.wall))
	}
	tb.Logf("server CPU, %% of one core: %v", r.hubCPU)
	return r
}

// cpuTime is the CPU time this process has used, user and system: the
// whole application (hub, web app, SQLite, Go runtime) and this test's
// few goroutines.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nodeOrSkip returns the path of a node with a WebSocket client (Node 20
// with --experimental-websocket, or later); without one the test is
// skipped, unless it runs in CI, where it fails.
func nodeOrSkip(tb testing.TB) string {
	tb.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		var out []byte
		out, err = exec.Command(node, "--experimental-websocket", "-e", "if (typeof WebSocket !== 'function') throw new Error('no WebSocket in Node ' + process.version)").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("node 20 or later not installed: %v", err)
		}
		tb.Skipf("node 20 or later not installed: %v", err)
	}
	return node
}

// freeAddr is a free address on the loopback for the server to listen on.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHealthy waits until the server answers /healthz.
func waitHealthy(tb testing.TB, base string, done <-chan error) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			tb.Fatalf("serve ended early: %v", err)
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatal(errors.New("the server did not become healthy"))
}

// tlogWriter sends the tool's progress to the test's log.
type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"channels/internal/cluster"
	"channels/internal/cluster/clustertest"
)

// TestHeartbeatGaps measures how far apart each process's heartbeats
// arrive at NATS, idle and under load: the figure DefaultExpiry is chosen
// from (docs/HUB.md). It is a measurement, not a check, so it runs only
// when asked:
//
//	CHANNELS_MEASURE_GAPS=cpu,clients CHANNELS_MEASURE_SECONDS=60 \
//	  go test -run TestHeartbeatGaps -v ./internal/cluster/
//
// Loads (comma-separated): idle; cpu (four busy-looping processes beside
// the three under test, so that each gets about a third of a core);
// clients (300 members per process in channels of ten, each broadcasting
// at its budget and sending direct messages, with logins coming and
// going).
func TestHeartbeatGaps(t *testing.T) {
	loads := os.Getenv("CHANNELS_MEASURE_GAPS")
	if loads == "" {
		t.Skip("a measurement: set CHANNELS_MEASURE_GAPS=idle|cpu|clients[,…]")
	}
	seconds, _ := strconv.Atoi(os.Getenv("CHANNELS_MEASURE_SECONDS"))
	if seconds <= 0 {
		seconds = 60
	}
	url := clustertest.NATS(t)
	s := newSite(t, url)
	nodes := s.start(3)

	// The observer is a process of its own that does nothing else, so
	// that the gaps are the senders' and not a loaded observer's.
	obs := exec.Command(os.Args[0], "-test.run", "^TestHeartbeatObserver$")
	obs.Env = append(os.Environ(), "CHANNELS_OBSERVE_NATS="+url, "CHANNELS_OBSERVE_SUBJECT="+s.prefix+".nodes")
	obs.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := obs.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	arrivals := map[string][]time.Time{}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("observer: %q", lines.Text())
	}
	go func() {
		for lines.Scan() {
			node, at, ok := strings.Cut(lines.Text(), " ")
			ns, err := strconv.ParseInt(at, 10, 64)
			if !ok || err != nil {
				continue
			}
			mu.Lock()
			arrivals[node] = append(arrivals[node], time.Unix(0, ns))
			mu.Unlock()
		}
	}()
	defer func() { _ = obs.Process.Kill(); _ = obs.Wait() }()

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second)
	defer cancel()
	for _, load := range splitComma(loads) {
		switch load {
		case "idle":
		case "cpu":
			for range 4 {
				cmd := exec.Command("sh", "-c", "while :; do :; done")
				cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			}
		case "clients":
			go clientLoad(ctx, t, s, nodes)
		default:
			t.Fatalf("unknown load %q", load)
		}
	}
	<-ctx.Done()

	mu.Lock()
	defer mu.Unlock()
	var all []time.Duration
	for node, ts := range arrivals {
		var gaps []time.Duration
		for i := 1; i < len(ts); i++ {
			gaps = append(gaps, ts[i].Sub(ts[i-1]))
		}
		if len(gaps) == 0 {
			continue
		}
		slices.Sort(gaps)
		all = append(all, gaps...)
		t.Logf("node %s: %d heartbeats, gap p50 %v, p99 %v, max %v", node, len(ts),
			gaps[len(gaps)/2].Round(time.Millisecond), gaps[len(gaps)*99/100].Round(time.Millisecond), gaps[len(gaps)-1].Round(time.Millisecond))
	}
	slices.Sort(all)
	if len(all) > 0 {
		t.Logf("load %s, %d s: all gaps p50 %v, p99 %v, p99.9 %v, max %v", loads, seconds,
			all[len(all)/2].Round(time.Millisecond), all[len(all)*99/100].Round(time.Millisecond),
			all[len(all)*999/1000].Round(time.Millisecond), all[len(all)-1].Round(time.Millisecond))
	}
}

// TestHeartbeatObserver is TestHeartbeatGaps's observer process: it
// prints "ready", then a line "node unixnano" for each heartbeat.
func TestHeartbeatObserver(t *testing.T) {
	url, subject := os.Getenv("CHANNELS_OBSERVE_NATS"), os.Getenv("CHANNELS_OBSERVE_SUBJECT")
	if url == "" {
		t.Skip("TestHeartbeatGaps's observer process")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		now := time.Now().UnixNano()
		if node, ok := cluster.HeartbeatFrom(m.Data); ok {
			mu.Lock()
			fmt.Fprintf(w, "%s %d\n", node, now)
			_ = w.Flush()
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	fmt.Fprintln(w, "ready")
	_ = w.Flush()
	mu.Unlock()
	select {}
}

func splitComma(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != ',' {
			i++
		}
		if i > 0 {
			out = append(out, s[:i])
		}
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return out
}

// clientLoad keeps members busy on every process until ctx ends: in
// channels of ten spread over the processes, each broadcasts at its
// budget and sends a direct message to a neighbour; every few seconds a
// tenth of them reconnect.
func clientLoad(ctx context.Context, t *testing.T, s *site, nodes []*node) {
	const perNode, group = 300, 10
	var wg sync.WaitGroup
	var channel string
	for i := range perNode * len(nodes) {
		if i%group == 0 {
			channel = s.channel()
		}
		m := s.member(channel)
		next := s.member(channel) // a neighbour, never connected: messages go nowhere
		wg.Add(1)
		go func(i int, m member, ch string) {
			defer wg.Done()
			for ctx.Err() == nil {
				c := dialLoad(nodes[i%len(nodes)])
				if c == nil {
					return
				}
				c.run(ctx, m, ch, next.id, time.Duration(3+i%5)*time.Second)
			}
		}(i, m, channel)
	}
	wg.Wait()
	_ = t
}

// loadClient is a Verto client for load only: it never checks a reply.
type loadClient struct{ c *client }

func dialLoad(n *node) *loadClient {
	defer func() { _ = recover() }() // dialNode calls Fatal on a testing.TB we do not have
	return &loadClient{dialNode(noFatal{}, n, "load")}
}

func (l *loadClient) run(ctx context.Context, m member, ch, to string, life time.Duration) {
	c := l.c
	defer c.ws.CloseNow()
	c.send("login", map[string]any{"login": m.id, "passwd": m.password, "sessid": "load"})
	c.send("verto.subscribe", map[string]any{"eventChannel": ch})
	end := time.After(life)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case <-tick.C:
		}
		c.send("verto.broadcast", map[string]any{"eventChannel": ch, "eventData": fmt.Sprint("load ", i), "localBroadcast": true})
		c.send("verto.info", map[string]any{"msg": map[string]any{"to": to, "body": "load"}})
		for len(c.frames) > 0 {
			<-c.frames
		}
	}
}

// noFatal is a testing.TB whose failures panic, for load goroutines.
type noFatal struct{ testing.TB }

func (noFatal) Helper()                   {}
func (noFatal) Fatalf(string, ...any)     { panic("load client") }
func (noFatal) Cleanup(func())            {}
func (noFatal) Logf(string, ...any)       {}
func (noFatal) Errorf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

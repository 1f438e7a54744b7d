package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"channels/internal/cluster"
	"channels/internal/cluster/clustertest"
	"channels/internal/hub"
	"channels/internal/lockedbuf"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// The cluster tests run the real binary: several `channels serve`
// processes on one throw-away PostgreSQL database and a NATS server,
// driven by Verto clients over real WebSockets.

const domain = "cluster.test"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// channelsBinary builds cmd/channels once per test run.
func channelsBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if bin := os.Getenv("CHANNELS_TEST_BINARY"); bin != "" {
			binPath = bin // a binary built beforehand (measurements)
			return
		}
		dir, err := os.MkdirTemp("", "channels-cluster-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "channels")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/channels")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// site is one database, one subject prefix and its processes.
type site struct {
	t      *testing.T
	db     string
	st     *store.Store
	nats   string
	prefix string
	env    []string
	nodes  []*node
}

func newSite(t *testing.T, natsURL string, env ...string) *site {
	t.Helper()
	db := storetest.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &site{t: t, db: db, st: st, nats: natsURL, prefix: clustertest.Prefix("test"), env: env}
	t.Cleanup(func() {
		for _, n := range s.nodes {
			n.stop()
			if l := n.logs.String(); strings.Contains(l, "WARNING: DATA RACE") {
				t.Errorf("a data race in the process on %s:\n%s", n.addr, l)
			}
		}
		// The bucket of the per-channel counts, if any, goes with the test.
		if nc, err := nats.Connect(s.nats); err == nil {
			if js, err := jetstream.New(nc); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = js.DeleteKeyValue(ctx, s.prefix+"_seats")
				cancel()
			}
			nc.Close()
		}
	})
	return s
}

// node is one `channels serve` process.
type node struct {
	t       *testing.T
	addr    string
	metrics string // its metrics listener
	cmd     *exec.Cmd
	logs    *syncBuffer
	done    chan struct{}
}

// syncBuffer collects output written while the test reads it.
type syncBuffer = lockedbuf.Buffer

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start starts n processes and waits until each serves and knows the
// others (its metrics count them).
func (s *site) start(n int) []*node {
	s.t.Helper()
	var out []*node
	for range n {
		out = append(out, s.startNode(s.nats))
	}
	waitPeers(s.t, out...)
	return out
}

// waitPeers waits until each of nodes knows all the others.
func waitPeers(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		n.waitMetric("channels_cluster_peers", func(v float64) bool { return int(v) == len(nodes)-1 })
	}
}

// metric reads one of the process's metrics (the sum of its series).
func (n *node) metric(name string) (float64, error) {
	resp, err := http.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("no metric %s", name)
	}
	return sum, nil
}

// waitMetric polls a metric of the process until ok holds, for up to 20 s.
func (n *node) waitMetric(name string, ok func(float64) bool) float64 {
	n.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := n.metric(name)
		if err == nil && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: metric %s is %v (%v)", n.addr, name, v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *site) startNode(natsURL string, extra ...string) *node {
	t := s.t
	t.Helper()
	addr, metrics := freeAddr(t), freeAddr(t)
	cmd := exec.Command(channelsBinary(t), "serve")
	cmd.Env = append(os.Environ(),
		"CHANNELS_LISTEN="+addr,
		"CHANNELS_METRICS_LISTEN="+metrics,
		"CHANNELS_DATABASE_POOL=8",               // several processes and tests share one PostgreSQL
		"CHANNELS_HUB_BYTES_PER_ADDRESS=1048576", // every test client is on 127.0.0.1
		"CHANNELS_BASE_URL=http://"+addr,
		"CHANNELS_DATABASE_URL="+s.db,
		"CHANNELS_DOMAIN="+domain,
		"CHANNELS_CLUSTER_URL="+natsURL,
		"CHANNELS_CLUSTER_PREFIX="+s.prefix,
		"CHANNELS_LOG_LEVEL=info",
	)
	cmd.Env = append(append(cmd.Env, s.env...), extra...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nd := &node{t: t, addr: addr, metrics: metrics, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(nd.done) }()
	s.nodes = append(s.nodes, nd)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-nd.done:
			t.Fatalf("channels serve exited:\n%s", logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("channels serve did not come up:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of %s:\n%s", addr, logs)
		}
	})
	return nd
}

// stop ends the process gracefully (SIGTERM), or kills it after 10 s.
func (n *node) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

// kill ends the process at once (kill -9).
func (n *node) kill() {
	_ = n.cmd.Process.Kill()
	<-n.done
}

// member is a client of a channel: its id and password in the database.
type member struct{ id, password, channel string }

func (s *site) channel() string {
	s.t.Helper()
	ch, err := s.st.CreateChannel(context.Background(), "test", true, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	return ch.ID
}

func (s *site) member(channel string) member {
	s.t.Helper()
	c, err := s.st.CreateClient(context.Background(), channel)
	if err != nil {
		s.t.Fatal(err)
	}
	return member{id: c.ID, password: c.Password, channel: channel}
}

// client is one Verto WebSocket.
type client struct {
	t      testing.TB
	name   string
	ws     *websocket.Conn
	frames chan map[string]any
	closed chan struct{}
	err    error // why reading ended; set before closed is
	id     int
}

func dialNode(t testing.TB, n *node, name string) *client {
	t.Helper()
	return dialNodeFrom(t, n, name, "")
}

// dialNodeFrom is dialNode from the loopback address ip (127.x.y.z), so
// that many clients do not all count against one address's limits; ""
// is the system's choice.
func dialNodeFrom(t testing.TB, n *node, name, ip string) *client {
	t.Helper()
	var opts *websocket.DialOptions
	if ip != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		opts = &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}}
	}
	return dialURL(t, "ws://"+n.addr+"/verto", name, opts)
}

// dialURL opens a Verto WebSocket to url ("ws://host/verto").
func dialURL(t testing.TB, url, name string, opts *websocket.DialOptions) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(1 << 20)
	c := &client{t: t, name: name, ws: ws, frames: make(chan map[string]any, 4096), closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			var m map[string]any
			if json.Unmarshal(data, &m) == nil {
				c.frames <- m
			}
		}
	}()
	t.Cleanup(func() { ws.CloseNow() })
	return c
}

func (c *client) send(method string, params map[string]any) int {
	c.id++
	data, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.id, "method": method, "params": params})
	if err := c.ws.Write(context.Background(), websocket.MessageText, data); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
	return c.id
}

// call sends a request and returns its reply, keeping other frames for
// next.
func (c *client) call(method string, params map[string]any) map[string]any {
	c.t.Helper()
	id := c.send(method, params)
	var keep []map[string]any
	defer func() {
		// Put back what arrived meanwhile, ahead of later frames.
		if len(keep) == 0 {
			return
		}
		rest := make([]map[string]any, 0, len(c.frames))
		for len(c.frames) > 0 {
			rest = append(rest, <-c.frames)
		}
		for _, f := range append(keep, rest...) {
			c.frames <- f
		}
	}()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f := <-c.frames:
			if v, ok := f["id"].(float64); ok && int(v) == id && f["method"] == nil {
				return f
			}
			keep = append(keep, f)
		case <-deadline:
			c.t.Fatalf("%s: no reply to %s", c.name, method)
		}
	}
}

func (c *client) login(m member, sessid string) map[string]any {
	c.t.Helper()
	return c.call("login", map[string]any{"login": m.id, "passwd": m.password, "sessid": sessid})
}

// join logs in and subscribes to the member's channel.
func (c *client) join(m member, sessid string) {
	c.t.Helper()
	if r := c.login(m, sessid); r["result"] == nil {
		c.t.Fatalf("%s: login: %v", c.name, r)
	}
	if r := c.call("verto.subscribe", map[string]any{"eventChannel": m.channel}); r["result"] == nil {
		c.t.Fatalf("%s: subscribe: %v", c.name, r)
	}
}

func (c *client) broadcast(channel, data string) map[string]any {
	c.t.Helper()
	return c.call("verto.broadcast", map[string]any{"eventChannel": channel, "eventData": data, "localBroadcast": true})
}

// next returns the next request the server sent (an event, a message, a
// punt) within d; nil if none came.
func (c *client) next(d time.Duration) map[string]any {
	timeout := time.After(d)
	for {
		select {
		case f := <-c.frames:
			if f["method"] != nil {
				return f
			}
		case <-timeout:
			return nil
		}
	}
}

// waitFor returns the first request for which ok holds, within d.
func (c *client) waitFor(d time.Duration, what string, ok func(map[string]any) bool) map[string]any {
	c.t.Helper()
	f, found := c.await(d, ok)
	if !found {
		c.t.Fatalf("%s: no %s within %v", c.name, what, d)
	}
	return f
}

// poll waits until ok holds, polling, for at most d; it returns how long
// that took.
func poll(t testing.TB, what string, d time.Duration, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > d {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func params(f map[string]any) map[string]any {
	p, _ := f["params"].(map[string]any)
	return p
}

func isEvent(data string) func(map[string]any) bool {
	return func(f map[string]any) bool {
		return f["method"] == "verto.event" && params(f)["eventData"] == data
	}
}

func isMessageFrom(from string) func(map[string]any) bool {
	return func(f map[string]any) bool {
		if f["method"] != "verto.info" {
			return false
		}
		msg, _ := params(f)["msg"].(map[string]any)
		return msg["from"] == from
	}
}

func errorCode(r map[string]any) string {
	if e, ok := r["error"].(map[string]any); ok {
		return fmt.Sprint(e["code"], " ", e["message"])
	}
	if res, ok := r["result"].(map[string]any); ok && res["code"] != nil {
		return fmt.Sprint(res["code"], " ", res["message"])
	}
	return ""
}

func ciSet() bool { return os.Getenv("CI") != "" }

// hubsConfig says how startHubs joins its hubs.
type hubsConfig struct {
	// nats is each hub's NATS URL (a private server's, a proxy's); hubs
	// past the list take its last one. None: the shared server.
	nats []string
	// broadcast is the broadcast budget; zero: none in the way.
	broadcast hub.Budget
	// heartbeat and expiry are the nodes'; zero: the defaults.
	heartbeat, expiry time.Duration
	// noWait: do not wait until each hub knows the others (NATS is down).
	noWait bool
}

// startHubs starts n hubs in this test process, each with its own
// cluster node, joined over NATS as cfg says, with limits and budgets no
// test client reaches (but cfg.broadcast), and waits until each knows the
// others. It returns their Verto URLs and their nodes.
func startHubs(t *testing.T, n int, cfg hubsConfig) (urls []string, nodes []*cluster.Node) {
	t.Helper()
	natsURLs := cfg.nats
	if len(natsURLs) == 0 {
		natsURLs = []string{clustertest.NATS(t)}
	}
	broadcast := cfg.broadcast
	if broadcast == (hub.Budget{}) {
		broadcast = hub.Budget{Rate: 1e9, Burst: 1 << 30}
	}
	prefix := clustertest.Prefix("hubs")
	for i := range n {
		node, err := cluster.New(cluster.Options{
			URL: natsURLs[min(i, len(natsURLs)-1)], Prefix: prefix,
			Heartbeat: cfg.heartbeat, Expiry: cfg.expiry,
		})
		if err != nil {
			t.Fatal(err)
		}
		h := hub.New(hub.Options{
			Gateway: memGateway{}, Domain: domain, Fabric: node,
			MaxConnsPerAddress: 1 << 20, MaxConnsPerClient: 1 << 20,
			RequestRate: 1e9, RequestBurst: 1 << 30,
			AddressBytes:    hub.Budget{Rate: 1e9, Burst: 1 << 30},
			BroadcastBudget: broadcast,
			MessageBudget:   hub.Budget{Rate: 1e9, Burst: 1 << 30},
		})
		urls = append(urls, serveHub(t, h, node))
		nodes = append(nodes, node)
	}
	if !cfg.noWait {
		waitKnown(t, nodes...)
	}
	return urls, nodes
}

// waitKnown waits until each of nodes knows all the others.
func waitKnown(t *testing.T, nodes ...*cluster.Node) {
	t.Helper()
	poll(t, "hubs that know each other", 20*time.Second, func() bool {
		for _, node := range nodes {
			if node.Stats().Nodes != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

// serveHub serves h (of node, nil: none) until the test ends, then stops
// both, and returns its Verto WebSocket URL.
func serveHub(t testing.TB, h *hub.Hub, node *cluster.Node) string {
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		if node != nil {
			_ = node.Close(ctx)
		}
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/verto"
}

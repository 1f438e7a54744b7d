package cli

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/cluster/clustertest"
	"channels/internal/config"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// The cluster examples, docs/nginx-cluster.conf and docs/Caddyfile.cluster,
// run here in front of two processes of one cluster (a throw-away
// PostgreSQL database, the local NATS), and do what their comments
// promise: everything the single-process examples do, both processes
// serving, members on different processes seeing each other, a GET that
// failed on one process retried on the other and a POST never, and the
// site going on when one process stops.

// The processes' addresses in the cluster examples.
const clusterAddrOne, clusterAddrTwo = "10.0.0.11:8080", "10.0.0.12:8080"

// upstreamHeader names the process that answered, set by the test's
// wrapper around each process.
const upstreamHeader = "X-Test-Upstream"

// clusterProcess is one Channels process of the test's cluster.
type clusterProcess struct {
	name  string
	addr  string
	store *store.Store
	drops atomic.Int64 // requests to /test-drop it received
	stop  func()
}

// startClusterProcesses starts two processes of one cluster, each the
// assembled app behind its own HTTP server, with base URL
// https://meet.example.org and the proxy (loopback) trusted. Around the
// app each adds: the upstreamHeader on every response, /test-forwarding (echoes the forwarding headers)
// and /test-drop: on the process named "one" it closes the connection
// without an answer (as a process that crashes mid-request does), on the
// other it answers 200.
func startClusterProcesses(t *testing.T) (one, two *clusterProcess) {
	t.Helper()
	natsURL := clustertest.NATS(t)
	dbURL := storetest.PostgresURL(t)
	prefix := clustertest.Prefix("proxy")
	start := func(name string) *clusterProcess {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := &clusterProcess{name: name, addr: ln.Addr().String()}
		cfg := config.Default()
		cfg.Listen = p.addr
		cfg.BaseURL = "https://meet.example.org"
		cfg.DatabaseURL = dbURL
		cfg.ClusterURL = natsURL
		cfg.ClusterPrefix = prefix
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		if p.store, err = store.Open(t.Context(), dbURL); err != nil {
			t.Fatal(err)
		}
		app, shutdown, err := Assemble(t.Context(), cfg, p.store, nil)
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/", app)
		mux.HandleFunc("/test-forwarding", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "host=%s xff=%s", r.Host, strings.Join(r.Header.Values("X-Forwarded-For"), "|"))
		})
		mux.HandleFunc("/test-drop", func(w http.ResponseWriter, r *http.Request) {
			p.drops.Add(1)
			if name != "one" {
				fmt.Fprint(w, name)
				return
			}
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		})
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(upstreamHeader, name)
				mux.ServeHTTP(w, r)
			}),
			ReadHeaderTimeout: 10 * time.Second,
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("%s: serve: %v", name, err)
			}
		}()
		stopped := false
		p.stop = func() {
			if stopped {
				return
			}
			stopped = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("%s: http shutdown: %v", name, err)
			}
			if err := shutdown(ctx); err != nil {
				t.Errorf("%s: app shutdown: %v", name, err)
			}
			<-done
			if err := p.store.Close(); err != nil {
				t.Errorf("%s: close store: %v", name, err)
			}
		}
		t.Cleanup(p.stop)
		return p
	}
	return start("one"), start("two")
}

// clusterConf reads a cluster example from docs/ with the processes'
// addresses replaced by the test's.
func clusterConf(t *testing.T, file string, one, two *clusterProcess) string {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join(docsDir, file))
	if err != nil {
		t.Fatal(err)
	}
	local := strings.NewReplacer(clusterAddrOne, one.addr, clusterAddrTwo, two.addr).Replace(string(conf))
	if strings.Contains(local, clusterAddrOne) || strings.Contains(local, clusterAddrTwo) || !strings.Contains(local, one.addr) || !strings.Contains(local, two.addr) {
		t.Fatalf("the test no longer knows how to move docs/%s's upstreams", file)
	}
	return local
}

// TestNginxClusterExample runs docs/nginx-cluster.conf, its ports,
// certificate and upstreams moved to the test's, in front of two
// processes of one cluster.
func TestNginxClusterExample(t *testing.T) {
	nginx := tool(t, "nginx", "nginx-light")
	one, two := startClusterProcesses(t)
	conf := clusterConf(t, "nginx-cluster.conf", one, two)
	checkCluster(t, one, two, func(t *testing.T) (int, int) { return runNginx(t, nginx, "nginx-cluster.conf", conf) })
}

// TestCaddyClusterExample runs docs/Caddyfile.cluster, with the test's
// ports and upstreams and Caddy's own local certificate authority, in
// front of two processes of one cluster.
func TestCaddyClusterExample(t *testing.T) {
	caddy := tool(t, "caddy", "caddy")
	validateCaddyfile(t, caddy, "Caddyfile.cluster")
	one, two := startClusterProcesses(t)
	conf := clusterConf(t, "Caddyfile.cluster", one, two)
	checkCluster(t, one, two, func(t *testing.T) (int, int) { return runCaddy(t, caddy, conf) })
}

// proxyClient returns an HTTP client that reaches the proxy's TLS port
// for https://meet.example.org, keeps cookies, and follows no redirects.
func proxyClient(t *testing.T, httpsPort int) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort)))
			},
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test's own certificate
		},
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       15 * time.Second,
	}
}

// fetch sends a request through the proxy and returns the status, the
// process that answered (by upstreamHeader; empty when none did) and the
// body.
func fetch(t *testing.T, client *http.Client, method, path string) (code int, upstream, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "https://meet.example.org"+path, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(upstreamHeader), string(b)
}

// checkCluster checks a cluster example in front of processes one and
// two; start runs a proxy of its own for t (its health state fresh)
// and returns its ports.
func checkCluster(t *testing.T, one, two *clusterProcess, start func(*testing.T) (httpsPort, httpPort int)) {
	room, err := one.store.CreateChannel(t.Context(), "Behind the proxy", true, 0)
	if err != nil {
		t.Fatal(err)
	}

	// Retries, each on a proxy of its own, whose passive health checks
	// have not yet taken process one out: a GET that process one drops
	// is answered by process two; a POST it drops is not sent again.
	t.Run("GET retried", func(t *testing.T) {
		client := proxyClient(t, freeze(start(t)))
		for i := 0; one.drops.Load() == 0; i++ {
			if i == 20 {
				t.Fatal("20 GETs, and none reached process one")
			}
			if code, up, body := fetch(t, client, "GET", "/test-drop"); code != 200 || up != "two" || body != "two" {
				t.Errorf("GET /test-drop: %d from %q: %.200s; want process two's answer", code, up, body)
			}
		}
	})
	t.Run("POST not retried", func(t *testing.T) {
		client := proxyClient(t, freeze(start(t)))
		one.drops.Store(0)
		for i := 0; one.drops.Load() == 0; i++ {
			if i == 20 {
				t.Fatal("20 POSTs, and none reached process one")
			}
			before := two.drops.Load()
			code, up, body := fetch(t, client, "POST", "/test-drop")
			switch {
			case one.drops.Load() == 0 && (code != 200 || up != "two"):
				t.Errorf("POST /test-drop: %d from %q: %.200s; want process two's answer", code, up, body)
			case one.drops.Load() > 0 && (code < 500 || two.drops.Load() != before):
				t.Errorf("the POST process one dropped: %d from %q, process two received it %d times; want a 5xx, and no retry",
					code, up, two.drops.Load()-before)
			}
		}
	})

	httpsPort, httpPort := start(t)
	// What the single-process examples do holds for the cluster example.
	checkProxy(t, httpsPort, httpPort)
	client := proxyClient(t, httpsPort)

	// Pages are served by both processes.
	served := map[string]int{}
	for range 20 {
		code, up, body := fetch(t, client, "GET", "/c/"+room.ID)
		if code != 200 || !strings.Contains(body, "Behind the proxy") {
			t.Fatalf("GET /c/%s: %d from %q\n%.300s", room.ID, code, up, body)
		}
		served[up]++
	}
	if served["one"] == 0 || served["two"] == 0 {
		t.Errorf("20 pages through the proxy were served %v; want both processes", served)
	}

	// Two members through the proxy, each on a different process, see
	// each other's broadcasts: the cluster joins them.
	alice := joinVia(t, httpsPort, room.ID, "")
	bob := joinVia(t, httpsPort, room.ID, alice.upstream)
	t.Logf("alice on process %s, bob on process %s", alice.upstream, bob.upstream)
	alice.broadcast("from alice")
	bob.await("alice's broadcast", isEvent(room.ID, "from alice"))
	bob.broadcast("from bob")
	alice.await("bob's broadcast", isEvent(room.ID, "from bob"))

	// One process stops (as systemctl stop does): its sockets close, and
	// every page and every new login goes to the other.
	const survivor = "two"
	stayed := bob
	if bob.upstream != survivor {
		stayed = alice
	}
	one.stop()
	for i := range 20 {
		if code, up, body := fetch(t, client, "GET", "/c/"+room.ID); code != 200 || up != survivor {
			t.Fatalf("GET %d after process one stopped: %d from %q\n%.300s", i, code, up, body)
		}
	}
	if code, up, _ := fetch(t, client, "GET", "/"); code != 200 || up != survivor {
		t.Errorf("GET / after process one stopped: %d from %q", code, up)
	}
	carol := joinVia(t, httpsPort, room.ID, "")
	if carol.upstream != survivor {
		t.Errorf("carol's socket after process one stopped: on %q", carol.upstream)
	}
	carol.broadcast("from carol")
	stayed.await("carol's broadcast", isEvent(room.ID, "from carol"))
}

// freeze keeps the first of two values (the proxy's TLS port).
func freeze(httpsPort, _ int) int { return httpsPort }

// vertoMember is a browser's Verto connection through the proxy.
type vertoMember struct {
	t        *testing.T
	ws       *websocket.Conn
	upstream string // the process it is connected to
	channel  string
	sessid   string
	id       int
}

var channelConfigRE = regexp.MustCompile(`(?s)<script type="application/json" id="channel-config">(.*?)</script>`)

// joinVia opens channel's page through the proxy as a new browser, logs
// in to the hub over a WebSocket through the proxy with the page's
// credentials, and subscribes to the channel. With avoid set, it
// connects again until the socket is on another process than avoid.
func joinVia(t *testing.T, httpsPort int, channel, avoid string) *vertoMember {
	t.Helper()
	client := proxyClient(t, httpsPort)
	code, _, body := fetch(t, client, "GET", "/c/"+channel)
	m := channelConfigRE.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("GET /c/%s: %d, no channel-config\n%.300s", channel, code, body)
	}
	var cfg struct {
		ClientID string `json:"clientId"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil || cfg.ClientID == "" || cfg.Password == "" {
		t.Fatalf("channel-config %s: %v", m[1], err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	v := &vertoMember{t: t, channel: channel, sessid: hex.EncodeToString(b[:])}
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		ws, resp, err := websocket.Dial(ctx, "wss://meet.example.org/verto", &websocket.DialOptions{
			HTTPClient: client,
			HTTPHeader: http.Header{"Origin": {"https://meet.example.org"}},
		})
		cancel()
		if err != nil {
			t.Fatalf("WebSocket /verto through the proxy: %v (%v)", err, resp)
		}
		up := resp.Header.Get(upstreamHeader)
		if up == "" {
			t.Fatalf("WebSocket upgrade through the proxy: no %s header", upstreamHeader)
		}
		if avoid == "" || up != avoid {
			v.ws, v.upstream = ws, up
			break
		}
		ws.Close(websocket.StatusNormalClosure, "")
		if try == 10 {
			t.Fatalf("11 WebSockets through the proxy, all on process %s", avoid)
		}
	}
	t.Cleanup(func() { v.ws.CloseNow() })
	v.call("login", map[string]any{"login": cfg.ClientID, "passwd": cfg.Password}, func(r map[string]any) bool {
		res, _ := r["result"].(map[string]any)
		return res["message"] == "logged in"
	})
	v.call("verto.subscribe", map[string]any{"eventChannel": channel}, func(r map[string]any) bool {
		res, _ := r["result"].(map[string]any)
		subs, _ := res["subscribedChannels"].([]any)
		return len(subs) == 1 && subs[0] == channel
	})
	return v
}

// call sends a request and waits for its reply, which ok must accept.
func (v *vertoMember) call(method string, params map[string]any, ok func(map[string]any) bool) {
	v.t.Helper()
	v.id++
	id := v.id
	params["sessid"] = v.sessid
	v.send(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	r := v.await(method+"'s reply", func(r map[string]any) bool { n, _ := r["id"].(float64); return int(n) == id })
	if !ok(r) {
		v.t.Fatalf("%s on process %s: %v", method, v.upstream, r)
	}
}

func (v *vertoMember) send(msg map[string]any) {
	v.t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		v.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(v.t.Context(), 5*time.Second)
	defer cancel()
	if err := v.ws.Write(ctx, websocket.MessageText, b); err != nil {
		v.t.Fatalf("write to process %s: %v", v.upstream, err)
	}
}

// broadcast sends data to the channel's members, on every process.
func (v *vertoMember) broadcast(data string) {
	v.t.Helper()
	v.call("verto.broadcast", map[string]any{"eventChannel": v.channel, "eventData": data, "localBroadcast": true},
		func(r map[string]any) bool { _, ok := r["result"]; return ok })
}

// await reads frames, skipping others, until one that match accepts.
func (v *vertoMember) await(what string, match func(map[string]any) bool) map[string]any {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(v.t.Context(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := v.ws.Read(ctx)
		if err != nil {
			v.t.Fatalf("waiting on process %s for %s: %v", v.upstream, what, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			v.t.Fatalf("frame %s: %v", b, err)
		}
		if match(m) {
			return m
		}
	}
}

// isEvent matches the verto.event of a broadcast of data in channel.
func isEvent(channel, data string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		p, _ := m["params"].(map[string]any)
		return m["method"] == "verto.event" && p["eventChannel"] == channel && p["eventData"] == data
	}
}

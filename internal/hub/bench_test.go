package hub

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/hub/hubtest"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// benchOptions lift the per-connection limits that would otherwise throttle
// a load generator on one address.
// unlimited is a budget nothing exhausts, for tests and benchmarks whose
// clients all share 127.0.0.1.
var unlimited = Budget{Rate: 1e9, Burst: 1 << 30}

func benchOptions(o *Options) {
	if os.Getenv("HUB_BENCH_LOG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	o.MaxConnsPerAddress = 1 << 20
	o.MaxConnsPerClient = 1 << 20
	o.RequestRate, o.RequestBurst = 1e9, 1<<30
	o.AddressBytes = unlimited
	o.BroadcastBudget = Budget{Rate: 1e9, Burst: 1 << 30}
	o.MessageBudget = Budget{Rate: 1e9, Burst: 1 << 30}
}

// BenchmarkLogin: connect, log in (directory lookup and login report
// included), wait for verto.clientReady, disconnect; 16 clients at once.
// Reported as logins/s. Gateways: an in-memory directory, and the real
// chain — fsapi registry, directory handlers, store — on SQLite and
// PostgreSQL.
func BenchmarkLogin(b *testing.B) {
	const users = 256
	b.Run("memory", func(b *testing.B) {
		gw := newDirGateway()
		for i := range users {
			gw.add(fmt.Sprintf("u%d", i), "pw", "room")
		}
		benchLogin(b, gw, func(i int) (string, string) { return fmt.Sprintf("u%d", i%users), "pw" })
	})
	for _, be := range storetest.Stores(b) {
		b.Run(be.Name, func(b *testing.B) {
			benchLogin(b, directoryGateway(b, be.Store), loginClients(b, be.Store, users))
		})
	}
}

// loginClients makes a channel of users clients on st for the login
// benchmarks, and returns the credentials of the i-th login (the clients
// in turn).
func loginClients(b *testing.B, st *store.Store, users int) func(i int) (string, string) {
	b.Helper()
	ctx := context.Background()
	ch, err := st.CreateChannel(ctx, "bench", true, 0)
	if err != nil {
		b.Fatal(err)
	}
	ids, pws := make([]string, users), make([]string, users)
	for i := range users {
		c, err := st.CreateClient(ctx, ch.ID)
		if err != nil {
			b.Fatal(err)
		}
		ids[i], pws[i] = c.ID, c.Password
	}
	return func(i int) (string, string) { return ids[i%users], pws[i%users] }
}

func benchLogin(b *testing.B, gw Gateway, cred func(int) (string, string)) {
	th := startHub(b, gw, benchOptions)
	benchLoginAt(b, th.url, cred, false, nil)
}

// benchLoginAt is benchLogin against the hub at url; with spread, each
// login comes from an address of its own (hubtest.SpreadIP), as browsers'
// do. drain, when set, waits for work the logins left queued (the hub's
// reports), which the figure then includes.
func benchLoginAt(b *testing.B, url string, cred func(int) (string, string), spread bool, drain func()) {
	var n atomic.Int64
	b.SetParallelism(16 / runtime.GOMAXPROCS(0))
	if runtime.GOMAXPROCS(0) > 16 {
		b.SetParallelism(1)
	}
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := int(n.Add(1))
			user, pw := cred(i)
			opts := &websocket.DialOptions{}
			if spread {
				d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: hubtest.SpreadIP(i % 5000)}}
				opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
			}
			ws, _, err := websocket.Dial(ctx, url, opts)
			if err != nil {
				b.Error(err)
				return
			}
			msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":%q,"passwd":%q,"sessid":"b%d"}}`, user, pw, i)
			if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				b.Error(err)
				return
			}
			for got := 0; got < 2; got++ { // the result, then verto.clientReady
				if _, _, err := ws.Read(ctx); err != nil {
					b.Error(err)
					return
				}
			}
			_ = ws.CloseNow()
		}
	})
	if drain != nil {
		drain()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}

// BenchmarkBroadcast: time from sending a localBroadcast until the last of
// N subscribers has the event. Reports p50 and p99 in ms.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{500, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchBroadcast(b, n) })
	}
}

func benchBroadcast(b *testing.B, n int) {
	gw := newDirGateway()
	for i := range n + 1 {
		gw.add(fmt.Sprintf("u%d", i), "pw", "room")
	}
	th := startHub(b, gw, benchOptions)
	// Subscribers are lean raw clients (hubtest.Raw): the figure should be
	// the hub's, not the load generator's.
	fanOut(b, th.url, n, func(int) (*hubtest.Raw, error) { return hubtest.DialRaw(th.url) })
}

// fanOut logs n subscribers into "room" at url (dial makes the i-th
// connection), then a sender that broadcasts b.N times, each time until
// every subscriber has the event, and reports the p50 and p99 of that.
func fanOut(b *testing.B, url string, n int, dial func(i int) (*hubtest.Raw, error)) {
	ctx := context.Background()
	var pending atomic.Int64
	done := make(chan time.Time, 1)
	for i := 1; i <= n; i++ {
		rc, err := dial(i)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(rc.Close)
		if err := rc.Login(fmt.Sprintf("u%d", i), "pw", fmt.Sprintf("s%d", i), "room"); err != nil {
			b.Fatal(err)
		}
		go func() {
			for {
				p, err := rc.Next()
				if err != nil {
					return
				}
				if isEvent(p) && pending.Add(-1) == 0 {
					done <- time.Now()
				}
			}
		}()
	}
	sender, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer sender.CloseNow()
	login := `{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"u0","passwd":"pw","sessid":"s0"}}`
	if err := sender.Write(ctx, websocket.MessageText, []byte(login)); err != nil {
		b.Fatal(err)
	}
	for range 2 {
		if _, _, err := sender.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
	go func() {
		for {
			if _, _, err := sender.Read(ctx); err != nil {
				return
			}
		}
	}()
	msg := []byte(`{"jsonrpc":"2.0","id":3,"method":"verto.broadcast","params":{"eventChannel":"room","eventData":"eyJwcmVzZW5jZSI6ImF2YWlsYWJsZSJ9","localBroadcast":true}}`)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		pending.Store(int64(n))
		t0 := time.Now()
		if err := sender.Write(ctx, websocket.MessageText, msg); err != nil {
			b.Fatal(err)
		}
		select {
		case t1 := <-done:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(10 * time.Second):
			b.Fatalf("%d subscribers still waiting", pending.Load())
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkRelay: direct messages from one sender to one target through
// verto.info and the relay, pipelined (at most 256 in flight). Reports
// msgs/s.
func BenchmarkRelay(b *testing.B) {
	gw := newDirGateway()
	gw.add("from", "pw", "room")
	gw.add("to", "pw", "room")
	th := startHub(b, gw, benchOptions)
	ctx := context.Background()
	connect := func(user string) *websocket.Conn {
		ws, _, err := websocket.Dial(ctx, th.url, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = ws.CloseNow() })
		m := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":%q,"passwd":"pw","sessid":%q}}`, user, user)
		if err := ws.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			b.Fatal(err)
		}
		for range 2 {
			if _, _, err := ws.Read(ctx); err != nil {
				b.Fatal(err)
			}
		}
		return ws
	}
	sender, target := connect("from"), connect("to")
	// Flow control: at most window messages not yet delivered, and at most
	// window SENT replies not yet read, so neither client is ever a slow
	// reader the hub would drop.
	const window = 256
	credits := make(chan struct{}, window)
	replies := make(chan struct{}, window)
	for range window {
		credits <- struct{}{}
		replies <- struct{}{}
	}
	var received atomic.Int64
	all := make(chan struct{})
	var total int64
	go func() {
		for {
			if _, _, err := target.Read(ctx); err != nil {
				return
			}
			credits <- struct{}{}
			if received.Add(1) == atomic.LoadInt64(&total) {
				close(all)
			}
		}
	}()
	go func() { // the sender's SENT replies
		for {
			if _, _, err := sender.Read(ctx); err != nil {
				return
			}
			replies <- struct{}{}
		}
	}()
	msg := []byte(`{"jsonrpc":"2.0","id":5,"method":"verto.info","params":{"msg":{"to":"to","body":"eyJ0eXBlIjoib2ZmZXIiLCJzZHAiOiJ2PTAuLi4ifQ=="}}}`)
	atomic.StoreInt64(&total, int64(b.N))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		<-credits
		<-replies
		if err := sender.Write(ctx, websocket.MessageText, msg); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		b.Fatalf("%d of %d delivered", received.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkIdleConnections: memory the server needs for N idle, logged-in
// connections. The clients run in a child process (this test binary,
// TestIdleClientsHelper) so only the server is measured. Reports MiB of
// heap and stacks in use and KiB per connection. Run with -benchtime=1x.
func BenchmarkIdleConnections(b *testing.B) {
	const n = 10000
	gw := newDirGateway()
	for i := range n {
		gw.add(fmt.Sprintf("u%d", i), "pw", "room")
	}
	th := startHub(b, gw, func(o *Options) { // default queue and limits, except for one load address
		o.MaxConnsPerAddress = 1 << 20
	})
	for range b.N {
		runtime.GC()
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)

		cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientsHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "HUB_IDLE_URL="+th.url, "HUB_IDLE_N="+strconv.Itoa(n))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		ready := false
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready = true
				break
			}
		}
		if !ready {
			_ = cmd.Wait()
			b.Fatal("client process did not get ready")
		}
		conns, _, _, _ := th.h.reg.counts()
		runtime.GC()
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		used := float64(m1.HeapInuse+m1.StackInuse) - float64(m0.HeapInuse+m0.StackInuse)
		sys := float64(m1.Sys)
		b.ReportMetric(used/(1<<20), "MiB-inuse")
		b.ReportMetric(float64(m1.StackInuse-m0.StackInuse)/(1<<20), "MiB-stacks")
		if f := os.Getenv("HUB_IDLE_HEAPPROFILE"); f != "" {
			if out, err := os.Create(f); err == nil {
				_ = pprof.WriteHeapProfile(out)
				_ = out.Close()
			}
		}
		b.ReportMetric(sys/(1<<20), "MiB-sys")
		b.ReportMetric(used/float64(conns)/1024, "KiB/conn")
		b.ReportMetric(float64(conns), "conns")
		if rss := vmRSS(); rss > 0 {
			b.ReportMetric(float64(rss)/1024, "MiB-rss")
		}
		_ = stdin.Close()
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		_ = cmd.Wait()
	}
}

// TestIdleClientsHelper is BenchmarkIdleConnections' client process; it
// does nothing unless HUB_IDLE_URL is set.
func TestIdleClientsHelper(t *testing.T) {
	url := os.Getenv("HUB_IDLE_URL")
	if url == "" {
		t.Skip("helper process for BenchmarkIdleConnections")
	}
	n, _ := strconv.Atoi(os.Getenv("HUB_IDLE_N"))
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	conns := make([]*websocket.Conn, n)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ws, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				t.Error(err)
				return
			}
			m := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"u%d","passwd":"pw","sessid":"s%d"}}`, i, i)
			if err := ws.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
				t.Error(err)
				return
			}
			for range 2 {
				if _, _, err := ws.Read(ctx); err != nil {
					t.Error(err)
					return
				}
			}
			conns[i] = ws
		}()
	}
	wg.Wait()
	fmt.Println("READY")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the benchmark closes stdin
	for _, ws := range conns {
		if ws != nil {
			_ = ws.CloseNow()
		}
	}
}

// vmRSS is the process's resident set in KiB, from /proc (0 if unknown).
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

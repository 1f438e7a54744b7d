package unreadload

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"channels/internal/hub/hubtest"
	"channels/internal/lockedbuf"
	"channels/internal/store"
)

const (
	members    = 30
	eventBytes = 16 << 10 // the hub's MaxEventBytes: params of one broadcast
)

func BenchmarkUnreadSubscribers(b *testing.B) {
	n := envInt(b, "CHANNELS_UNREAD_N", 1024)
	secs := envInt(b, "CHANNELS_UNREAD_SECONDS", 30)
	bin := binary(b)
	for range b.N {
		r := run(b, bin, n, time.Duration(secs)*time.Second)
		b.ReportMetric(float64(r.peakKiB)/1024, "MiB-peak-rss")
		b.ReportMetric(float64(r.endKiB)/1024, "MiB-end-rss")
		b.ReportMetric(float64(r.events), "events-received")
		b.ReportMetric(float64(r.broadcasts), "broadcasts")
		b.ReportMetric(r.dropped, "frames-dropped")
		b.ReportMetric(float64(r.reconnects), "reconnects")
	}
}

type result struct {
	peakKiB, endKiB    int64
	events, broadcasts int64
	reconnects         int64
	dropped            float64
}

func run(b *testing.B, bin string, n int, d time.Duration) result {
	ctx := b.Context()
	dir := b.TempDir()
	db := filepath.Join(dir, "channels.db")
	st, err := store.Open(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	ch, err := st.CreateChannel(ctx, "Unread", true, 0)
	if err != nil {
		b.Fatal(err)
	}
	clients := func(k int) []store.Client {
		out := make([]store.Client, k)
		for i := range out {
			if out[i], err = st.CreateClient(ctx, ch.ID); err != nil {
				b.Fatal(err)
			}
		}
		return out
	}
	talkers, mutes := clients(members), clients(n)
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}

	addr, metrics := freeAddr(b), freeAddr(b)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"CHANNELS_LISTEN="+addr,
		"CHANNELS_METRICS_LISTEN="+metrics,
		"CHANNELS_BASE_URL=http://"+addr,
		"CHANNELS_DATABASE_URL="+db,
		"CHANNELS_DATA_DIR="+dir,
		"CHANNELS_LOG_LEVEL=error",
		"CHANNELS_HUB_BYTES_PER_ADDRESS=1048576", // the members share one address
	)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	waitHealthy(b, "http://"+addr, exited, logs)
	base := rssKiB(cmd.Process.Pid)
	wsURL := "ws://" + addr + "/verto"

	var r result
	stop := make(chan struct{})
	var wg sync.WaitGroup

	// The subscribers that never read: logged in and subscribed, then
	// only watched (without reading) so that one the hub cut comes back.
	// Each sends an echo every 5 s, as the browser's keepalive does (more
	// often), so that only the write timeout cuts it, not the hub's pings
	// it cannot answer; and a frame to a socket the hub closed is what
	// tells the client (the hub's FIN waits behind the unread data).
	var ready sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, c := range mutes {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%4))}
		ready.Add(1)
		wg.Go(func() {
			first := true
			for {
				sem <- struct{}{}
				rc := dialUntil(b, stop, wsURL, &net.Dialer{LocalAddr: local, Control: hubtest.ReceiveBuffer(4096)}, c)
				<-sem
				if first {
					ready.Done()
					first = false
				}
				if rc == nil {
					return
				}
				for beat := 0; alive(rc); beat++ {
					select {
					case <-stop:
						rc.Close()
						return
					case <-time.After(500 * time.Millisecond):
					}
					if beat%10 == 9 && rc.Send([]byte(`{"jsonrpc":"2.0","id":3,"method":"echo","params":{}}`)) != nil {
						break
					}
				}
				rc.Close()
				atomic.AddInt64(&r.reconnects, 1)
			}
		})
	}
	ready.Wait()
	b.Logf("%d subscribers that never read logged in; server RSS %d MiB (%d MiB at start)", n, rssKiB(cmd.Process.Pid)>>10, base>>10)

	// The members: they read everything, and broadcast 16 KiB events at
	// their budget (a refused broadcast is tried again 250 ms later).
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 6)}
	params := `{"eventChannel":` + strconv.Quote(ch.ID) + `,"localBroadcast":true,"eventData":"`
	pad := strings.Repeat("e", eventBytes-len(params)-len(`"}`))
	for _, c := range talkers {
		rc := dialUntil(b, stop, wsURL, &net.Dialer{LocalAddr: local}, c)
		if rc == nil {
			b.Fatal("member did not connect")
		}
		replies := make(chan bool, 1) // refused?
		go func() {
			for {
				p, err := rc.Next()
				if err != nil {
					close(replies)
					return
				}
				if bytes.Contains(p[:min(len(p), 64)], []byte(`"method"`)) {
					atomic.AddInt64(&r.events, 1)
					continue
				}
				select {
				case replies <- bytes.Contains(p, []byte("-32010")):
				case <-stop:
					return
				}
			}
		}()
		wg.Go(func() {
			defer rc.Close()
			for id := 10; ; id++ {
				select {
				case <-stop:
					return
				default:
				}
				msg := `{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"verto.broadcast","params":` + params + pad + `"}}`
				if err := rc.Send([]byte(msg)); err != nil {
					return
				}
				var refused, ok bool
				select {
				case refused, ok = <-replies:
				case <-stop:
				}
				if !ok {
					return
				}
				if !refused {
					atomic.AddInt64(&r.broadcasts, 1)
					continue
				}
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
			}
		})
	}

	// The server's resident set, sampled; VmHWM is its peak.
	end := time.After(d)
	tick := time.NewTicker(time.Second)
	start := time.Now()
	for done := false; !done; {
		select {
		case <-end:
			done = true
		case <-exited:
			b.Fatalf("the server exited:\n%s", logs.String())
		case <-tick.C:
			b.Logf("%4.0fs: server RSS %d MiB", time.Since(start).Seconds(), rssKiB(cmd.Process.Pid)>>10)
		}
	}
	tick.Stop()
	r.peakKiB, r.endKiB = status(cmd.Process.Pid)
	r.dropped = metric(b, "http://"+metrics+"/metrics", "frames_dropped_total")
	close(stop)
	wg.Wait()
	b.Logf("peak RSS %d MiB, %d MiB at the end; %d broadcasts, %d events received by the members, %.0f frames not delivered, %d reconnects",
		r.peakKiB>>10, r.endKiB>>10, r.broadcasts, r.events, r.dropped, r.reconnects)
	return r
}

// dialUntil connects c and logs it in to its channel, trying again while
// the hub refuses (a connection it cut may not be released yet); nil once
// stop is closed.
func dialUntil(b *testing.B, stop <-chan struct{}, wsURL string, d *net.Dialer, c store.Client) *hubtest.Raw {
	for {
		rc, err := hubtest.DialRawWith(wsURL, d)
		if err == nil {
			if err = rc.Login(c.ID, c.Password, c.ID, c.ChannelID); err == nil {
				return rc
			}
			rc.Close()
		}
		select {
		case <-stop:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// alive reports whether rc's TCP connection is still established, without
// reading from it.
func alive(rc *hubtest.Raw) bool {
	sc, ok := rc.NetConn().(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	up := false
	_ = raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		up = err == nil && info.State == 1 // TCP_ESTABLISHED
	})
	return up
}

// status reads VmHWM and VmRSS of pid, in KiB.
func status(pid int) (hwm, rss int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		}
	}
	return hwm, rss
}

func rssKiB(pid int) int64 { _, rss := status(pid); return rss }

// metric sums the samples of the metric whose name ends with suffix.
func metric(b *testing.B, url, suffix string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		b.Logf("metrics: %v", err)
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		if strings.HasSuffix(name, suffix) {
			v, _ := strconv.ParseFloat(value, 64)
			sum += v
		}
	}
	return sum
}

// binary is CHANNELS_UNREAD_BINARY, or this tree's cmd/channels built for
// the run.
func binary(b *testing.B) string {
	if bin := os.Getenv("CHANNELS_UNREAD_BINARY"); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "channels")
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/channels")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}

func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(b *testing.B, base string, exited <-chan struct{}, logs *syncBuffer) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			b.Fatalf("the server exited:\n%s", logs.String())
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatal("the server did not become healthy")
}

// syncBuffer collects output written while the test reads it.
type syncBuffer = lockedbuf.Buffer

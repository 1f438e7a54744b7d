package cluster_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"channels/internal/cluster"
	"channels/internal/cluster/clustertest"
	"channels/internal/hub"
)

// The benchmarks run hubs in this process, each joined to the others by
// its own cluster.Node (its own NATS connection), and compare them, in the
// same run, with one hub on its own. Budgets and per-address limits are
// lifted, as in internal/hub's benchmarks, so that the figures are the
// hubs' and NATS's; the directory is in memory.

// memGateway answers every directory lookup with a user of password "pw"
// allowed the channel "room".
type memGateway struct{}

func (memGateway) Respond(_ context.Context, form url.Values) []byte {
	if form.Get("action") != "jsonrpc-authenticate" {
		return []byte(`<document type="freeswitch/xml"><section name="result"><result status="ok"/></section></document>`)
	}
	return fmt.Appendf(nil, `<document type="freeswitch/xml"><section name="directory"><domain name=%q><user id=%q><params>`+
		`<param name="password" value="pw"/><param name="jsonrpc-allowed-methods" value="echo,verto.subscribe,verto.broadcast,verto.info"/>`+
		`<param name="jsonrpc-allowed-event-channels" value="room"/></params></user></domain></section></document>`, domain, form.Get("user"))
}

// benchHubs starts n hubs; clustered joins them over NATS.
func benchHubs(b *testing.B, n int, clustered bool) []string {
	b.Helper()
	nats := ""
	if clustered {
		nats = clustertest.NATS(b)
	}
	prefix := "bench" + randomHex(6)
	var urls []string
	for range n {
		o := hub.Options{
			Gateway: memGateway{}, Domain: domain,
			MaxConnsPerAddress: 1 << 20, MaxConnsPerClient: 1 << 20,
			RequestRate: 1e9, RequestBurst: 1 << 30,
			BroadcastBudget: hub.Budget{Rate: 1e9, Burst: 1 << 30},
			MessageBudget:   hub.Budget{Rate: 1e9, Burst: 1 << 30},
		}
		var node *cluster.Node
		if clustered {
			var err error
			node, err = cluster.New(cluster.Options{URL: nats, Prefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			o.Fabric = node
		}
		h := hub.New(o)
		srv := httptest.NewServer(h)
		b.Cleanup(func() {
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = h.Shutdown(ctx)
			if node != nil {
				_ = node.Close(ctx)
			}
		})
		urls = append(urls, "ws"+strings.TrimPrefix(srv.URL, "http")+"/verto")
	}
	if clustered {
		time.Sleep(1200 * time.Millisecond) // heartbeats: every hub knows the others
	}
	return urls
}

// raw is a minimal WebSocket client, so that the load generator costs the
// shared CPU little: text frames out, unfragmented frames in.
type raw struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

func dialRaw(b *testing.B, wsURL string) *raw {
	b.Helper()
	u, _ := url.Parse(wsURL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		b.Fatal(err)
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		u.RequestURI(), u.Host, base64.StdEncoding.EncodeToString(key[:]))
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("upgrade: %v %v", resp, err)
	}
	r := &raw{conn: conn, br: br}
	b.Cleanup(func() { conn.Close() })
	return r
}

func (r *raw) send(p string) error {
	hdr := []byte{0x81}
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = binary.BigEndian.AppendUint16(append(hdr, 0x80|126), uint16(n))
	default:
		hdr = binary.BigEndian.AppendUint64(append(hdr, 0x80|127), uint64(n))
	}
	hdr = append(hdr, 0, 0, 0, 0) // a zero mask: the payload goes as is
	_, err := r.conn.Write(append(hdr, p...))
	return err
}

func (r *raw) next() ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(r.br, l[:]); err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(r.br, l[:]); err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.br, r.buf); err != nil {
		return nil, err
	}
	if h[0]&0x0f == 0x8 {
		return nil, io.EOF
	}
	return r.buf, nil
}

// login logs in user with subscribe and waits for the replies.
func (r *raw) login(b *testing.B, user string, subscribe bool) {
	b.Helper()
	if err := r.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":%q,"passwd":"pw","sessid":%q}}`, user, "s-"+user)); err != nil {
		b.Fatal(err)
	}
	want := 2 // login result, clientReady
	if subscribe {
		if err := r.send(`{"jsonrpc":"2.0","id":2,"method":"verto.subscribe","params":{"eventChannel":"room"}}`); err != nil {
			b.Fatal(err)
		}
		want++
	}
	for range want {
		if _, err := r.next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClusterBroadcast: time from a localBroadcast until the last of
// the subscribers, spread evenly over the hubs, has the event.
func BenchmarkClusterBroadcast(b *testing.B) {
	for _, c := range []struct {
		subs, hubs int
		clustered  bool
	}{{500, 1, false}, {500, 1, true}, {1500, 1, false}, {1500, 3, true}} {
		name := fmt.Sprintf("%dsubs-%dhubs", c.subs, c.hubs)
		if !c.clustered {
			name += "-alone"
		}
		b.Run(name, func(b *testing.B) { benchBroadcast(b, c.subs, benchHubs(b, c.hubs, c.clustered)) })
	}
}

func benchBroadcast(b *testing.B, n int, urls []string) {
	var pending atomic.Int64
	done := make(chan time.Time, 1)
	for i := range n {
		r := dialRaw(b, urls[i%len(urls)])
		r.login(b, "u"+strconv.Itoa(i), true)
		go func() {
			for {
				p, err := r.next()
				if err != nil {
					return
				}
				if strings.Contains(string(p[:min(len(p), 64)]), `"verto.event"`) && pending.Add(-1) == 0 {
					done <- time.Now()
				}
			}
		}()
	}
	sender := dialRaw(b, urls[0])
	sender.login(b, "sender", false)
	go func() {
		for {
			if _, err := sender.next(); err != nil {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // subscriptions reach NATS
	msg := `{"jsonrpc":"2.0","id":3,"method":"verto.broadcast","params":{"eventChannel":"room","eventData":"eyJwcmVzZW5jZSI6ImF2YWlsYWJsZSJ9","localBroadcast":true}}`
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		pending.Store(int64(n))
		t0 := time.Now()
		if err := sender.send(msg); err != nil {
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

// BenchmarkClusterRelay: direct messages from one sender to one target,
// on the same hub or on two, pipelined (at most 256 in flight).
func BenchmarkClusterRelay(b *testing.B) {
	b.Run("1hub-alone", func(b *testing.B) { u := benchHubs(b, 1, false); benchRelay(b, u[0], u[0]) })
	b.Run("1hub-clustered", func(b *testing.B) { u := benchHubs(b, 1, true); benchRelay(b, u[0], u[0]) })
	b.Run("across-2hubs", func(b *testing.B) { u := benchHubs(b, 2, true); benchRelay(b, u[0], u[1]) })
}

func benchRelay(b *testing.B, fromURL, toURL string) {
	sender, target := dialRaw(b, fromURL), dialRaw(b, toURL)
	sender.login(b, "from", false)
	target.login(b, "to", false)
	time.Sleep(1200 * time.Millisecond) // the sender's hub hears of the target
	const window = 256
	credits := make(chan struct{}, window)
	replies := make(chan struct{}, window)
	for range window {
		credits <- struct{}{}
		replies <- struct{}{}
	}
	var received, total atomic.Int64
	all := make(chan struct{})
	go func() {
		for {
			if _, err := target.next(); err != nil {
				return
			}
			credits <- struct{}{}
			if received.Add(1) == total.Load() {
				close(all)
			}
		}
	}()
	go func() {
		for {
			if _, err := sender.next(); err != nil {
				return
			}
			replies <- struct{}{}
		}
	}()
	msg := `{"jsonrpc":"2.0","id":5,"method":"verto.info","params":{"msg":{"to":"to","body":"eyJ0eXBlIjoib2ZmZXIiLCJzZHAiOiJ2PTAuLi4ifQ=="}}}`
	total.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		<-credits
		<-replies
		if err := sender.send(msg); err != nil {
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

// BenchmarkClusterLogin: connect, log in, wait for verto.clientReady,
// disconnect; 16 clients at once, spread over the hubs.
func BenchmarkClusterLogin(b *testing.B) {
	b.Run("1hub-alone", func(b *testing.B) { benchLogin(b, benchHubs(b, 1, false)) })
	b.Run("1hub-clustered", func(b *testing.B) { benchLogin(b, benchHubs(b, 1, true)) })
	b.Run("3hubs", func(b *testing.B) { benchLogin(b, benchHubs(b, 3, true)) })
}

func benchLogin(b *testing.B, urls []string) {
	var n atomic.Int64
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(n.Add(1))
			r := dialRaw(b, urls[i%len(urls)])
			r.login(b, "u"+strconv.Itoa(i%256), false)
			r.conn.Close()
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}

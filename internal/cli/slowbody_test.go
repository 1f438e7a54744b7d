package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/config"
	"channels/internal/connlimit"
	"channels/internal/store/storetest"
)

// The large variant of TestSlowBodies attacks a running server, e.g.
//
//	go test ./internal/cli -run TestSlowBodies -v -slowbody.target 127.0.0.1:8080 -slowbody.n 10000 -slowbody.every 3s -slowbody.bound 60s
//
// (one process holds at most RLIMIT_NOFILE sockets: run two for 20,000).
var (
	slowTarget = flag.String("slowbody.target", "", "host:port of a running server for TestSlowBodies to attack instead of an in-process one")
	slowN      = flag.Int("slowbody.n", 300, "slow-body sockets TestSlowBodies opens from 127.0.0.1")
	slowEvery  = flag.Duration("slowbody.every", 300*time.Millisecond, "interval between the body bytes of one socket")
	slowBound  = flag.Duration("slowbody.bound", 0, "time within which the server must have closed every socket (default: the in-process server's ReadTimeout + 2 s)")
)

// TestSlowBodies: sockets from one address that send a whole header and
// then trickle a body neither keep another address from being answered
// within a second nor stay open: those over the per-address cap are closed
// at accept, the others when ReadTimeout ends their request. On the old
// server (no ReadTimeout, no caps) no socket was ever closed, and 20,000 of
// them exhausted the descriptors.
func TestSlowBodies(t *testing.T) {
	addr, bound := *slowTarget, *slowBound
	var ln *connlimit.Listener
	lim := httpLimits{
		ReadHeaderTimeout: time.Second,
		ReadTimeout:       time.Second,
		WriteTimeout:      2 * time.Second,
		IdleTimeout:       time.Second,
		Conns:             connlimit.Options{MaxPerAddr: 100, MaxTotal: 1000},
	}
	if addr == "" {
		if bound == 0 {
			bound = lim.ReadTimeout + 2*time.Second
		}
		b := storetest.SQLite(t)
		cfg := config.Default()
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = inner.Addr().String()
		cfg.BaseURL = "http://" + addr
		h, shutdown, err := Assemble(t.Context(), cfg, b.Store, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer shutdown(context.WithoutCancel(t.Context()))
		srv, l := newHTTPServer(t.Context(), inner, h, lim, slog.New(slog.DiscardHandler))
		ln = l.(*connlimit.Listener)
		go srv.Serve(ln)
		defer srv.Close()
	} else if bound == 0 {
		bound = time.Minute
	}
	base := "http://" + addr

	// A WebSocket opened before the attack outlives ReadTimeout: net/http
	// clears a hijacked connection's deadlines.
	var ws *websocket.Conn
	if *slowTarget == "" {
		var err error
		ws, _, err = websocket.Dial(t.Context(), "ws://"+addr+"/verto", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {base}}})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
	}

	start := time.Now()
	a := attack(t.Context(), addr, *slowN, *slowEvery)
	opened := time.Since(start)
	t.Logf("%d sockets dialled in %v: %d connected, %d dial errors (first: %v)", *slowN, opened.Round(time.Millisecond), a.connected(), a.dialErrs, a.firstErr)
	if ln != nil {
		if _, per := ln.Open(netip.MustParseAddr("127.0.0.1")); per > lim.Conns.MaxPerAddr {
			t.Errorf("%d connections of 127.0.0.1 open, cap %d", per, lim.Conns.MaxPerAddr)
		}
	}

	// Another address is answered promptly while the sockets are open.
	probe := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")},
		}).DialContext, DisableKeepAlives: true},
	}
	var worst time.Duration
	for range 5 {
		t0 := time.Now()
		resp, err := probe.Get(base + "/healthz")
		d := time.Since(t0)
		if err != nil {
			t.Errorf("request from 127.0.0.2 during the attack: %v after %v", err, d)
			worst = max(worst, d)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		worst = max(worst, d)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("request from 127.0.0.2: status %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("slowest of 5 requests from 127.0.0.2: %v", worst.Round(time.Millisecond))
	if worst > time.Second {
		t.Errorf("request from 127.0.0.2 took %v, want under 1 s", worst)
	}

	// Every slow socket is closed by the server within the bound.
	deadline := start.Add(opened + bound)
	for a.open() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("after %v: %d of %d connected sockets still open; last closed %v after the attack began",
		time.Since(start).Round(time.Millisecond), a.open(), a.connected(), a.lastClosed().Round(time.Millisecond))
	if n := a.open(); n > 0 {
		t.Errorf("%d slow sockets still open %v after they were opened", n, bound)
	}
	a.stop()

	if ws != nil {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"echo","params":{}}`)); err != nil {
			t.Fatalf("WebSocket after %v: write: %v", time.Since(start), err)
		}
		if _, msg, err := ws.Read(ctx); err != nil || !strings.Contains(string(msg), `"id":1`) {
			t.Errorf("WebSocket after %v: reply %s, %v", time.Since(start), msg, err)
		}
	}
}

// slowAttack is a set of slow-body sockets.
type slowAttack struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	start    time.Time
	dialErrs int
	firstErr error

	mu                  sync.Mutex
	nConnected, nClosed int
	last                time.Duration
}

func (a *slowAttack) connected() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nConnected
}

func (a *slowAttack) open() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nConnected - a.nClosed
}

func (a *slowAttack) lastClosed() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

func (a *slowAttack) stop() {
	a.cancel()
	a.wg.Wait()
}

// attack opens n sockets to addr from 127.0.0.1, at most 256 dials at a
// time, and returns once each is connected or failed. Each sends a POST
// /signin header announcing a 10,000-byte body, then one body byte every
// interval until the server closes it or answers.
func attack(ctx context.Context, addr string, n int, every time.Duration) *slowAttack {
	ctx, cancel := context.WithCancel(ctx)
	a := &slowAttack{cancel: cancel, start: time.Now()}
	header := fmt.Sprintf("POST /signin HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\nn", addr)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 10 * time.Second}
	var errMu sync.Mutex
	var dialed sync.WaitGroup
	sem := make(chan struct{}, 256)
	for range n {
		sem <- struct{}{}
		dialed.Add(1)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				_, err = io.WriteString(c, header)
			}
			<-sem
			if err != nil {
				errMu.Lock()
				a.dialErrs++
				if a.firstErr == nil {
					a.firstErr = err
				}
				errMu.Unlock()
				if c != nil {
					c.Close()
				}
				dialed.Done()
				return
			}
			defer c.Close()
			a.mu.Lock()
			a.nConnected++
			a.mu.Unlock()
			dialed.Done()
			trickle(ctx, c, every)
			a.mu.Lock()
			a.nClosed++
			a.last = max(a.last, time.Since(a.start))
			a.mu.Unlock()
		}()
	}
	dialed.Wait()
	return a
}

// trickle writes a byte every interval to c until the server closes c,
// answers, or ctx ends.
func trickle(ctx context.Context, c net.Conn, every time.Duration) {
	buf := make([]byte, 512)
	for ctx.Err() == nil {
		c.SetReadDeadline(time.Now().Add(every))
		_, err := c.Read(buf)
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			return // an answer (400, 408) or the close
		}
		if _, err := c.Write([]byte("x")); err != nil {
			return
		}
	}
}

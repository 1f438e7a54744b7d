package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/config"
	"channels/internal/store/storetest"
)

// TestStopWithSlowRequest: serve's graceful stop (stopServing) while an
// upload outlasts the grace. Every one of 10 logged-in WebSockets is
// closed with 1001 (going away), the upload is cut at the grace and named
// in the log, and the stop returns no error (serve exits 0). Before, the
// HTTP drain spent the whole shared deadline on the upload, the hub's
// shutdown then failed at once, some sockets were cut without a close
// frame (1006) and serve returned an error (exit status 1).
func TestStopWithSlowRequest(t *testing.T) {
	const grace = 2 * time.Second
	b := storetest.SQLite(t)
	ch, err := b.Store.CreateChannel(t.Context(), "Lobby", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := inner.Addr().String()
	base := "http://" + addr
	cfg := config.Default()
	cfg.BaseURL = base
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	h, shutdownApp, err := Assemble(t.Context(), cfg, b.Store, logger)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			shutdownApp(context.Background())
		}
	})
	reqs := new(requests)
	srv, ln := newHTTPServer(t.Context(), inner, reqs.track(h), defaultHTTPLimits(cfg, logger), logger)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// Ten WebSockets, each logged in, each read until it closes.
	member := channelPageConfig(t, &http.Client{}, base+"/c/"+ch.ID)
	const sockets = 10
	codes := make([]websocket.StatusCode, sockets)
	var readers sync.WaitGroup
	for i := range sockets {
		v := dialVerto(t, "ws://"+addr+"/verto")
		if e := v.call(1, "login", map[string]any{"login": member.ClientID, "passwd": member.Password, "sessid": fmt.Sprintf("s%d", i)}); e != nil {
			t.Fatalf("login %d: %v", i, e)
		}
		readers.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*grace)
			defer cancel()
			for {
				if _, _, err := v.ws.Read(ctx); err != nil {
					codes[i] = websocket.CloseStatus(err) // -1: no close frame
					return
				}
			}
		})
	}

	// An upload that never finishes: a whole header, then a body a byte
	// at a time (ReadTimeout, 30 s, is far off).
	up, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	fmt.Fprintf(up, "POST /signin HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\nname=", addr, base)
	trickling, stopTrickle := context.WithCancel(t.Context())
	defer stopTrickle()
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		trickle(trickling, up, 100*time.Millisecond)
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, _ := reqs.underWay(1); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upload never reached the handler")
		}
	}

	start := time.Now()
	err = stopServing(srv, reqs, shutdownApp, grace, logger)
	took := time.Since(start)
	stopped = true
	readers.Wait()
	t.Logf("stop took %v; close codes %v", took.Round(time.Millisecond), codes)
	if err != nil {
		t.Errorf("stop: %v (serve would exit 1)", err)
	}
	for i, code := range codes {
		if code != websocket.StatusGoingAway {
			t.Errorf("WebSocket %d closed with %d, want 1001 (going away)", i, code)
		}
	}
	if took > grace+time.Second {
		t.Errorf("stop took %v, grace %v", took, grace)
	}
	if l := logs.String(); !strings.Contains(l, "POST /signin from ") || !strings.Contains(l, "level=WARN") {
		t.Errorf("the cut upload is not logged:\n%s", l)
	}
	// The upload's connection was cut (trickle sees it closed).
	select {
	case <-trickled:
	case <-time.After(2 * time.Second):
		t.Error("the slow upload's connection is still open after the stop")
	}
}

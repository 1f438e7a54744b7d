package hub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/fixtures"
)

// TestSoak: thousands of connections join channels, broadcast, message
// each other and drop at random (abruptly or politely), 250 at a time,
// within a time bound. Afterwards the registry is empty, every login was
// matched by a disconnect report, and after Shutdown no goroutine is left.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped in -short mode")
	}
	const (
		clients  = 3000
		parallel = 250
		channels = 40
		bound    = 60 * time.Second
	)
	before := runtime.NumGoroutine()
	gw := newDirGateway()
	for i := range clients {
		gw.add(fmt.Sprintf("c%d", i), "pw", fmt.Sprintf("ch%d", i%channels))
	}
	h := New(Options{Gateway: gw, Domain: fixtures.Domain, MaxConnsPerAddress: 2 * parallel, AddressBytes: unlimited})
	srv := newLoopbackServer(t, h)
	url := "ws://" + srv.addr + "/verto"

	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var logins, failures atomic.Int64
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := soakClient(ctx, url, i, channels, &logins); err != nil {
				failures.Add(1)
				t.Logf("client %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("soak exceeded %v", bound)
	}
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d clients failed", n)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		conns, sessions, users, chans := h.reg.counts()
		reports := gw.reportCount("verto_client_disconnect")
		if conns == 0 && sessions == 0 && users == 0 && chans == 0 && int64(reports) == logins.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry not empty: %d conns %d sessions %d users %d channels; %d disconnect reports for %d logins",
				conns, sessions, users, chans, reports, logins.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := h.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	srv.close()
	waitGoroutines(t, before)
}

// soakClient plays one client: login, subscribe, broadcast, message a
// random peer, read for a while, then leave one of three ways.
func soakClient(ctx context.Context, url string, i, channels int, logins *atomic.Int64) error {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	id := fmt.Sprintf("c%d", i)
	ch := fmt.Sprintf("ch%d", i%channels)
	write := func(s string) error { return ws.Write(ctx, websocket.MessageText, []byte(s)) }
	if err := write(fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":%q,"passwd":"pw","sessid":"s%d"}}`, id, i)); err != nil {
		return err
	}
	// Read until the login result: broadcasts may arrive in between.
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return fmt.Errorf("login read: %w", err)
		}
		if string(b[:min(len(b), 24)]) == `{"jsonrpc":"2.0","id":1,` {
			break
		}
	}
	logins.Add(1)
	msgs := []string{
		fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"verto.subscribe","params":{"eventChannel":%q}}`, ch),
		fmt.Sprintf(`{"jsonrpc":"2.0","id":3,"method":"verto.broadcast","params":{"eventChannel":%q,"eventData":"join","localBroadcast":true}}`, ch),
		fmt.Sprintf(`{"jsonrpc":"2.0","id":4,"method":"verto.info","params":{"msg":{"to":"c%d","body":"aGk="}}}`, rand.IntN(i+1)),
		`{"jsonrpc":"2.0","id":5,"method":"echo","params":{}}`,
	}
	for _, m := range msgs {
		if err := write(m); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	// Read until the echo's reply: every earlier reply and some events.
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if string(b[:min(len(b), 24)]) == `{"jsonrpc":"2.0","id":5,` {
			break
		}
	}
	time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
	switch rand.IntN(3) {
	case 0:
		return nil // abrupt: CloseNow
	case 1:
		_ = ws.Close(websocket.StatusNormalClosure, "")
	default:
		_ = write(fmt.Sprintf(`{"jsonrpc":"2.0","id":6,"method":"verto.unsubscribe","params":{"eventChannel":%q}}`, ch))
		_ = ws.Close(websocket.StatusGoingAway, "")
	}
	return nil
}

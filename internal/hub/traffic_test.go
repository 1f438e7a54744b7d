package hub

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/fixtures"
)

// TestAddressByteBudget: the frames of all connections from one address
// share one byte budget, logged in or not: past it the connection whose
// frame does not fit is closed 1008, a new connection does not refill it,
// and another address is untouched. (Before, only frames were counted:
// 16 sockets sending 48 frames of 250 KiB a second took 163 % of a core.)
func TestAddressByteBudget(t *testing.T) {
	h := New(Options{Gateway: newDirGateway(), Domain: fixtures.Domain,
		MaxFrameBytes: 32 << 10,
		AddressBytes:  Budget{Rate: 1e-3, Burst: 16}, // 64 KiB, as good as never refilled
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = r.Header.Get("X-Test-Addr") // as forwarded.Handler sets it behind a proxy
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	open := func(addr string) *websocket.Conn {
		t.Helper()
		ws, _, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Test-Addr": {addr}}})
		if err != nil {
			t.Fatal(err)
		}
		ws.SetReadLimit(1 << 20)
		t.Cleanup(func() { _ = ws.CloseNow() })
		return ws
	}
	frame := []byte(`{"jsonrpc":"2.0","id":1,"method":"echo","params":{"pad":"` + strings.Repeat("x", 30<<10) + `"}}`)
	// send writes a frame and reads what comes back: its reply, or the
	// close status when the hub cut the connection.
	send := func(ws *websocket.Conn) websocket.StatusCode {
		t.Helper()
		if err := ws.Write(t.Context(), websocket.MessageText, frame); err != nil {
			return websocket.CloseStatus(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if _, _, err := ws.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
		return -1 // an answer: still open
	}
	const flooder = "203.0.113.7:1000"
	a, b := open(flooder), open(flooder)
	if got := send(a); got != -1 {
		t.Fatalf("first frame from the address: closed %v", got)
	}
	if got := send(b); got != -1 {
		t.Fatalf("second frame from the address, another socket: closed %v", got)
	}
	if got := send(a); got != websocket.StatusPolicyViolation {
		t.Fatalf("a frame past the address's 64 KiB: %v, want closed 1008", got)
	}
	if got := send(open(flooder)); got != websocket.StatusPolicyViolation {
		t.Fatalf("a new connection from the address: %v, want closed 1008 (no refill)", got)
	}
	if got := send(open("198.51.100.9:2000")); got != -1 {
		t.Fatalf("another address: closed %v", got)
	}
}

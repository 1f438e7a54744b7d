package bidi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fakeRemote answers commands as a BiDi remote end would: an event first
// (to be ignored), then replies out of order; "fail" gets an error reply,
// "hang" none.
func fakeRemote(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		var held []byte
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var m struct {
				ID     uint64
				Method string
				Params json.RawMessage
			}
			if err := json.Unmarshal(data, &m); err != nil {
				t.Errorf("bad command %s: %v", data, err)
				return
			}
			var out []byte
			switch m.Method {
			case "hang":
				continue
			case "fail":
				out, _ = json.Marshal(map[string]any{"type": "error", "id": m.ID, "error": "no such frame", "message": "gone"})
			default:
				out, _ = json.Marshal(map[string]any{"type": "success", "id": m.ID, "result": map[string]any{"echo": m.Params}})
			}
			_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"event","method":"log.entryAdded","params":{}}`))
			if m.Method == "slow" { // answered after the next command's reply
				held = out
				continue
			}
			_ = ws.Write(ctx, websocket.MessageText, out)
			if held != nil {
				_ = ws.Write(ctx, websocket.MessageText, held)
				held = nil
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, fakeRemote(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Replies are matched by id, whatever their order.
	slow := make(chan error, 1)
	var slowOut struct{ Echo struct{ N int } }
	go func() { slow <- c.Call(ctx, "slow", map[string]int{"N": 1}, &slowOut) }()
	time.Sleep(50 * time.Millisecond)

	tests := []struct {
		method  string
		params  any
		wantN   int
		wantErr string
	}{
		{"ok", map[string]int{"N": 2}, 2, ""},
		{"ok", nil, 0, ""},
		{"fail", nil, 0, "bidi fail: no such frame: gone"},
	}
	for _, tc := range tests {
		var out struct{ Echo struct{ N int } }
		err := c.Call(ctx, tc.method, tc.params, &out)
		if tc.wantErr != "" {
			var be *Error
			if !errors.As(err, &be) || err.Error() != tc.wantErr {
				t.Errorf("%s: error %v, want %q", tc.method, err, tc.wantErr)
			}
			continue
		}
		if err != nil || out.Echo.N != tc.wantN {
			t.Errorf("%s: got %+v, %v; want N=%d", tc.method, out, err, tc.wantN)
		}
	}
	if err := <-slow; err != nil || slowOut.Echo.N != 1 {
		t.Errorf("slow: got %+v, %v", slowOut, err)
	}

	// A command with no reply ends with its context.
	hctx, hcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer hcancel()
	if err := c.Call(hctx, "hang", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang: %v, want deadline exceeded", err)
	}
}

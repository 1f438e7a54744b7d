package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/fixtures"
)

// recordedGateway answers directory lookups with the responses the
// stand-in /fsapi gave FreeSWITCH in the recording (real recorded data),
// answers everything else with the not-found document, and keeps every form
// it receives.
type recordedGateway struct {
	notFound string
	byUser   map[string]string // directory document by user id

	mu    sync.Mutex
	forms []url.Values
}

func newRecordedGateway(t testing.TB) *recordedGateway {
	g := &recordedGateway{byUser: map[string]string{}}
	for _, r := range fixtures.CurlRequests(t) {
		f := r.Form
		switch {
		case f["section"] == "directory" && f["action"] == "jsonrpc-authenticate":
			if strings.Contains(r.Response, `section name="directory"`) {
				g.byUser[f["user"]] = r.Response
			} else {
				g.notFound = r.Response
			}
		case f["section"] == "configuration" && f["key_value"] == "acl.conf":
			g.notFound = r.Response
		}
	}
	if g.notFound == "" || len(g.byUser) != 3 {
		t.Fatalf("recorded gateway: unexpected fixture contents (%d users)", len(g.byUser))
	}
	return g
}

func (g *recordedGateway) Respond(_ context.Context, form url.Values) []byte {
	g.mu.Lock()
	g.forms = append(g.forms, form)
	g.mu.Unlock()
	if form.Get("section") == "directory" {
		if doc, ok := g.byUser[form.Get("user")]; ok && form.Get("domain") == fixtures.Domain {
			return []byte(doc)
		}
		return []byte(g.notFound)
	}
	if strings.HasPrefix(form.Get("action"), "verto_client_") {
		return []byte("ok")
	}
	return []byte(g.notFound)
}

// received returns a copy of the forms received so far.
func (g *recordedGateway) received() []url.Values {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]url.Values(nil), g.forms...)
}

// testHub serves a hub on a loopback httptest server.
type testHub struct {
	h   *Hub
	srv *httptest.Server
	url string // ws://…/verto
}

func startHub(t testing.TB, gw Gateway, mod func(*Options)) *testHub {
	t.Helper()
	opts := Options{Gateway: gw, Domain: fixtures.Domain, Hostname: fixtures.Hostname}
	if mod != nil {
		mod(&opts)
	}
	return serveHub(t, New(opts), nil)
}

// serveHub serves h at /verto on a loopback test server whose listener
// wrap may replace (nil: as it is), shut down with the test.
func serveHub(t testing.TB, h *Hub, wrap func(net.Listener) net.Listener) *testHub {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/verto", h)
	srv := httptest.NewUnstartedServer(mux)
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	srv.Start()
	th := &testHub{h: h, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/verto"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})
	return th
}

// wsClient is a test WebSocket client whose frames are read in the
// background into a channel.
type wsClient struct {
	t      testing.TB
	name   string
	ws     *websocket.Conn
	frames chan clientFrame
}

// clientFrame is a received frame, or the end of the connection.
type clientFrame struct {
	data   []byte
	closed bool
	status websocket.StatusCode
	reason string // of the close frame
}

func dial(t testing.TB, th *testHub, name string, header http.Header) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, th.url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	ws.SetReadLimit(1 << 20)
	c := &wsClient{t: t, name: name, ws: ws, frames: make(chan clientFrame, 1024)}
	go func() {
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				var ce websocket.CloseError
				_ = errors.As(err, &ce)
				c.frames <- clientFrame{closed: true, status: websocket.CloseStatus(err), reason: ce.Reason}
				close(c.frames)
				return
			}
			c.frames <- clientFrame{data: data}
		}
	}()
	t.Cleanup(func() { _ = ws.CloseNow() })
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	case json.RawMessage:
		b = x
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			c.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

// next waits for the next frame.
func (c *wsClient) next(timeout time.Duration) (clientFrame, bool) {
	select {
	case f, ok := <-c.frames:
		if !ok {
			return clientFrame{closed: true}, true
		}
		return f, true
	case <-time.After(timeout):
		return clientFrame{}, false
	}
}

// recv waits for the next frame and decodes it.
func (c *wsClient) recv() map[string]any {
	c.t.Helper()
	f, ok := c.next(5 * time.Second)
	if !ok {
		c.t.Fatalf("%s: no frame within 5 s", c.name)
	}
	if f.closed {
		c.t.Fatalf("%s: connection closed (%v) while waiting for a frame", c.name, f.status)
	}
	var m map[string]any
	if err := json.Unmarshal(f.data, &m); err != nil {
		c.t.Fatalf("%s: frame %s: %v", c.name, f.data, err)
	}
	return m
}

// call sends a request and returns the next frame.
func (c *wsClient) call(id int, method string, params map[string]any) map[string]any {
	c.t.Helper()
	c.send(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	return c.recv()
}

// login logs in and consumes the result and the verto.clientReady.
func (c *wsClient) login(user, pass, sessid string) {
	c.t.Helper()
	r := c.call(1, "login", map[string]any{"login": user, "passwd": pass, "sessid": sessid})
	if res, ok := r["result"].(map[string]any); !ok || res["message"] != "logged in" {
		c.t.Fatalf("%s: login: %v", c.name, r)
	}
	if r := c.recv(); r["method"] != "verto.clientReady" {
		c.t.Fatalf("%s: expected verto.clientReady, got %v", c.name, r)
	}
}

// quiet asserts that no frame arrives within d.
func (c *wsClient) quiet(d time.Duration) {
	c.t.Helper()
	if f, ok := c.next(d); ok {
		c.t.Fatalf("%s: unexpected frame %s (closed %v)", c.name, f.data, f.closed)
	}
}

// decode parses JSON keeping numbers exact.
func decode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// loopbackServer is a plain http.Server on 127.0.0.1, for tests that must
// close the server themselves before counting goroutines.
type loopbackServer struct {
	addr string
	srv  *http.Server
}

func newLoopbackServer(t testing.TB, h http.Handler) *loopbackServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/verto", h)
	s := &loopbackServer{addr: ln.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(s.close)
	return s
}

func (s *loopbackServer) close() { _ = s.srv.Close() }

// waitGoroutines waits until no more goroutines run than before (plus a
// small allowance for the runtime), or fails with a dump.
func waitGoroutines(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+2 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d running, %d before\n%s", n, before, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

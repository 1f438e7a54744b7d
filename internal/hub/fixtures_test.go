package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The recorded FreeSWITCH session: domain, host name and users.
const (
	recDomain   = "channels.test"
	recHostname = "vm"
	chanAB      = "0b0e4c1e-6a55-4c39-9d0e-3f7b0c2c7a11"
	chanC       = "7d1f2a90-2c3e-4f7a-8f3b-1b2c3d4e5f60"
	userA       = "3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d"
	passA       = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	userB       = "5c4d3e2f-1a0b-4c9d-8e7f-6a5b4c3d2e1f"
	passB       = "1f2e3d4c-5b6a-4798-8a6b-5c4d3e2f1a0b"
	userC       = "8b7a6958-4f3e-4d2c-9b1a-0f9e8d7c6b5a"
	passC       = "2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b"
)

// fixturesDir finds ../shared/fixtures beside the repository root.
func fixturesDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "fixtures")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// transcriptEvent is one line of verto-transcript.json.
type transcriptEvent struct {
	Conn string          `json:"conn"`
	Dir  string          `json:"dir"`
	Step string          `json:"step"`
	JSON json.RawMessage `json:"json"`
	Raw  string          `json:"raw"`
	MS   int             `json:"ms"`
}

func loadTranscript(t testing.TB) []transcriptEvent {
	t.Helper()
	var ev []transcriptEvent
	readJSON(t, "verto-transcript.json", &ev)
	return ev
}

// curlRequest is one line of xml-curl-requests.json.
type curlRequest struct {
	BasicAuth bool              `json:"basic_auth"`
	Form      map[string]string `json:"form"`
	Response  string            `json:"response"`
	UserAgent string            `json:"user_agent"`
}

func loadCurlRequests(t testing.TB) []curlRequest {
	t.Helper()
	var reqs []curlRequest
	readJSON(t, "xml-curl-requests.json", &reqs)
	return reqs
}

func readJSON(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixturesDir(t), name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("parse fixture %s: %v", name, err)
	}
}

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
	for _, r := range loadCurlRequests(t) {
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
		if doc, ok := g.byUser[form.Get("user")]; ok && form.Get("domain") == recDomain {
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
	opts := Options{Gateway: gw, Domain: recDomain, Hostname: recHostname}
	if mod != nil {
		mod(&opts)
	}
	h := New(opts)
	mux := http.NewServeMux()
	mux.Handle("/verto", h)
	srv := httptest.NewServer(mux)
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
				c.frames <- clientFrame{closed: true, status: websocket.CloseStatus(err)}
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

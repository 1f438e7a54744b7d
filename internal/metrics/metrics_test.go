package metrics_test

import (
	"database/sql"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/metrics"
	"channels/internal/metrics/metricstest"
)

// scrape serves m's handler and reads it once.
func scrape(t *testing.T, m *metrics.Metrics) metricstest.Samples {
	t.Helper()
	srv := httptest.NewServer(m.Handler(nil))
	defer srv.Close()
	return metricstest.Scrape(t, srv.URL)
}

// TestNil: a part built without metrics gets nil hooks, which do nothing,
// and middlewares that hand back the very handler they were given.
func TestNil(t *testing.T) {
	var m *metrics.Metrics
	if m.HTTP() != nil || m.Web() != nil || m.FSAPI() != nil || m.Hub() != nil {
		t.Fatal("a nil Metrics hands out hooks")
	}
	if err := m.WatchDB("sqlite", nil); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if h := m.HTTP().Middleware(mux); h != http.Handler(mux) {
		t.Error("nil HTTP wraps the handler")
	}
	if h := m.Web().Routes(mux); h != http.Handler(mux) {
		t.Error("nil Web wraps the handler")
	}
	hub, web, fs := m.Hub(), m.Web(), m.FSAPI()
	hub.ConnOpened()
	hub.ConnClosed()
	hub.Login()
	hub.LoginFailed(metrics.LoginBadPassword)
	hub.Request("login")
	hub.Broadcast()
	hub.Relayed()
	hub.FrameDropped()
	hub.SlowReaderClosed(metrics.SlowQueueFull)
	hub.BudgetRefused(metrics.BudgetMessage)
	web.SignIn()
	web.SignInFailed(metrics.SignInUnknownUser)
	web.RateLimited(metrics.LimitNewClients)
	fs.Request(metrics.FSAPINoHandler, metrics.FSAPIForbidden)
}

// TestBoundedLabels: values outside a hook's set are counted as "other",
// so what a client sends (a Verto method name) never becomes a label; and
// every known value is there at zero from the start.
func TestBoundedLabels(t *testing.T) {
	m := metrics.New()
	before := scrape(t, m)
	for _, name := range []string{"channels_hub_requests_total", "channels_hub_login_failures_total", "channels_web_rate_limited_total"} {
		if !before.Has(name) {
			t.Errorf("%s missing before anything was counted", name)
		}
	}
	if !before.Has("channels_hub_requests_total", "method", "verto.broadcast") {
		t.Error("known method verto.broadcast has no series at 0")
	}
	hub := m.Hub()
	hub.Request("verto.broadcast")
	hub.Request("login")
	hub.Request("attacker-chosen-<script>")
	hub.Request("")
	hub.LoginFailed("made up")
	m.Web().RateLimited("made up")
	after := scrape(t, m)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"channels_hub_requests_total", []string{"method", "verto.broadcast"}, 1},
		{"channels_hub_requests_total", []string{"method", "login"}, 1},
		{"channels_hub_requests_total", []string{"method", "other"}, 2},
		{"channels_hub_login_failures_total", []string{"reason", "other"}, 1},
		{"channels_web_rate_limited_total", []string{"limit", "other"}, 1},
	}
	for _, tt := range tests {
		if got := metricstest.Delta(before, after, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v moved by %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	for _, s := range after {
		for _, v := range s.Labels {
			if strings.Contains(v, "attacker") || v == "made up" {
				t.Errorf("client-chosen value became a label: %s %v", s.Name, s.Labels)
			}
		}
	}
}

// TestMiddleware: requests are labelled with the pattern of the mux that
// routed them — the inner one when Web.Routes wraps it — and their status,
// never with their path; a panic counts as a 500 and a WebSocket upgrade
// as a 101 as soon as it is made.
func TestMiddleware(t *testing.T) {
	m := metrics.New()
	inner := http.NewServeMux()
	inner.HandleFunc("GET /c/{id}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("page")) })
	inner.HandleFunc("POST /signin", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	inner.HandleFunc("POST /boom", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	inner.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	// Like the app's: a handler in front of the inner mux that copies the
	// request (forwarded.Handler does).
	copying := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Web().Routes(inner).ServeHTTP(w, r.Clone(r.Context()))
	})
	top := http.NewServeMux()
	top.HandleFunc("/fsapi", func(w http.ResponseWriter, r *http.Request) {}) // writes nothing: 200
	top.HandleFunc("/verto", func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.Read(r.Context()) // until the client goes
	})
	top.Handle("/", copying)
	srv := httptest.NewServer(m.HTTP().Middleware(top))
	defer srv.Close()

	do := func(method, path string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}
	before := scrape(t, m)
	do("GET", "/c/one")
	do("GET", "/c/two")
	do("POST", "/signin")
	do("GET", "/no-such-page-1")
	do("GET", "/no-such-page-2")
	do("POST", "/fsapi")
	do("POST", "/boom") // not GET: a client retries an idempotent request whose connection broke

	ctx := t.Context()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/verto", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	after := scrape(t, m) // the WebSocket is still open

	const d = "channels_http_request_duration_seconds_count"
	tests := []struct {
		route, code string
		want        float64
	}{
		{"GET /c/{id}", "200", 2},
		{"POST /signin", "401", 1},
		{"/", "404", 2},
		{"/fsapi", "200", 1},
		{"POST /boom", "500", 1},
		{"/verto", "101", 1},
	}
	for _, tt := range tests {
		if got := metricstest.Delta(before, after, d, "route", tt.route, "code", tt.code); got != tt.want {
			t.Errorf("route %q code %s: %v requests, want %v", tt.route, tt.code, got, tt.want)
		}
	}
	for _, s := range after {
		if r := s.Labels["route"]; strings.Contains(r, "no-such-page") || strings.Contains(r, "/c/one") {
			t.Errorf("a path became a route label: %v", s.Labels)
		}
	}
	if got := after.Sum("channels_http_request_duration_seconds_bucket", "route", "GET /c/{id}", "le", "+Inf"); got < 2 {
		t.Errorf("histogram +Inf bucket of GET /c/{id}: %v", got)
	}
}

// TestWatchDB: the pool's statistics are read at each scrape, labelled
// with the dialect; watching a second pool of the same dialect is an
// error, not a panic.
func TestWatchDB(t *testing.T) {
	m := metrics.New()
	stats := sql.DBStats{MaxOpenConnections: 8, OpenConnections: 3, InUse: 1, Idle: 2, WaitCount: 5, WaitDuration: 1500 * time.Millisecond}
	if err := m.WatchDB("sqlite", func() sql.DBStats { return stats }); err != nil {
		t.Fatal(err)
	}
	s := scrape(t, m)
	for name, want := range map[string]float64{
		"channels_db_max_open_connections": 8,
		"channels_db_open_connections":     3,
		"channels_db_in_use_connections":   1,
		"channels_db_idle_connections":     2,
		"channels_db_waits_total":          5,
		"channels_db_wait_seconds_total":   1.5,
	} {
		if got := s.Sum(name, "dialect", "sqlite"); got != want || !s.Has(name, "dialect", "sqlite") {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	stats.InUse = 7
	if got := scrape(t, m).Sum("channels_db_in_use_connections"); got != 7 {
		t.Errorf("in use after a change: %v, want 7", got)
	}
	if err := m.WatchDB("sqlite", func() sql.DBStats { return stats }); err == nil {
		t.Error("a second pool of the same dialect registered")
	}
}

// TestRuntime: the Go runtime and process collectors are in the registry.
func TestRuntime(t *testing.T) {
	s := scrape(t, metrics.New())
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "go_build_info"} {
		if !s.Has(name) {
			t.Errorf("%s missing", name)
		}
	}
}

// TestWatchCluster: a clustered hub's NATS counters are read at each scrape.
func TestWatchCluster(t *testing.T) {
	m := metrics.New()
	stats := metrics.ClusterStats{Connected: true, Disconnects: 2, Reconnects: 1, InMsgs: 40, OutMsgs: 30, DeadNodes: 1, Nodes: 2,
		Revived: 3, Unreadable: 4, Stalls: 5, ReadyLate: 6, ClockJumps: 7, LevelsLate: 8}
	if err := m.WatchCluster(func() metrics.ClusterStats { return stats }); err != nil {
		t.Fatal(err)
	}
	s := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"channels_cluster_nats_connected", nil, 1},
		{"channels_cluster_peers", nil, 2},
		{"channels_cluster_nats_disconnects_total", nil, 2},
		{"channels_cluster_nats_reconnects_total", nil, 1},
		{"channels_cluster_peers_dead_total", nil, 1},
		{"channels_cluster_nats_messages_total", []string{"direction", "in"}, 40},
		{"channels_cluster_nats_messages_total", []string{"direction", "out"}, 30},
		{"channels_cluster_faults_total", []string{"fault", "revived"}, 3},
		{"channels_cluster_faults_total", []string{"fault", "unreadable"}, 4},
		{"channels_cluster_faults_total", []string{"fault", "stall"}, 5},
		{"channels_cluster_faults_total", []string{"fault", "ready_late"}, 6},
		{"channels_cluster_faults_total", []string{"fault", "clock_jump"}, 7},
		{"channels_cluster_faults_total", []string{"fault", "levels_late"}, 8},
	} {
		if got := s.Sum(c.name, c.labels...); got != c.want || !s.Has(c.name, c.labels...) {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	stats.Connected = false
	if got := scrape(t, m).Sum("channels_cluster_nats_connected"); got != 0 {
		t.Errorf("connected after losing NATS: %v, want 0", got)
	}
	var none *metrics.Metrics
	if err := none.WatchCluster(func() metrics.ClusterStats { return stats }); err != nil {
		t.Errorf("nil Metrics: %v", err)
	}
}

// TestRateLimitedLimits: every limit of the web app has its series at 0
// from the start and counts under its own label, not "other" — among
// them stored_clients, the 503 of a server holding -max-stored-clients.
func TestRateLimitedLimits(t *testing.T) {
	const name = "channels_web_rate_limited_total"
	for _, limit := range []string{
		metrics.LimitSignInAddress, metrics.LimitSignInNameAddress, metrics.LimitSignInName, metrics.LimitSignInDevice,
		metrics.LimitNewClients, metrics.LimitTURNRenewals, metrics.LimitPasswordChecks, metrics.LimitStoredClients,
	} {
		t.Run(limit, func(t *testing.T) {
			m := metrics.New()
			before := scrape(t, m)
			if !before.Has(name, "limit", limit) {
				t.Fatalf("%s{limit=%q} missing before anything was counted", name, limit)
			}
			m.Web().RateLimited(limit)
			m.Web().RateLimited(limit)
			after := scrape(t, m)
			if got := metricstest.Delta(before, after, name, "limit", limit); got != 2 {
				t.Errorf("%s{limit=%q} moved by %v, want 2", name, limit, got)
			}
			if got := metricstest.Delta(before, after, name, "limit", metrics.Other); got != 0 {
				t.Errorf("%s{limit=%q} moved by %v, want 0", name, metrics.Other, got)
			}
		})
	}
	if metrics.LimitStoredClients != "stored_clients" {
		t.Errorf("LimitStoredClients = %q; docs/OPERATIONS.md says stored_clients", metrics.LimitStoredClients)
	}
}

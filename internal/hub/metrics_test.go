package hub

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/metrics"
	"channels/internal/metrics/metricstest"
)

// meteredHub is a test hub whose Options.Metrics record into m; scrape
// reads them.
func meteredHub(t *testing.T, gw Gateway, mod func(*Options)) (*testHub, func() metricstest.Samples) {
	t.Helper()
	m := metrics.New()
	th := startHub(t, gw, func(o *Options) {
		o.Metrics = m.Hub()
		if mod != nil {
			mod(o)
		}
	})
	srv := httptest.NewServer(m.Handler(nil))
	t.Cleanup(srv.Close)
	return th, func() metricstest.Samples { return metricstest.Scrape(t, srv.URL) }
}

type want struct {
	name   string
	labels []string
	value  float64
}

func checkMetrics(t *testing.T, s metricstest.Samples, wants []want) {
	t.Helper()
	for _, w := range wants {
		if got := s.Sum(w.name, w.labels...); got != w.value {
			t.Errorf("%s%q = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
}

// TestMetricsLoginsAndBudgets: logins by outcome, requests by method
// (unknown ones as "other"), broadcasts and relayed messages, and the
// refusals of each budget are counted where they happen.
func TestMetricsLoginsAndBudgets(t *testing.T) {
	gw := newDirGateway()
	gw.add("a", "pw", "room")
	gw.add("b", "pw", "room")
	th, scrape := meteredHub(t, gw, func(o *Options) {
		o.BroadcastBudget = Budget{Rate: 0.001, Burst: 1}
		o.MessageBudget = Budget{Rate: 0.001, Burst: 1}
		o.MaxConnsPerAddress = 3
	})
	a := dial(t, th, "a", nil)
	errorOf(t, a.call(1, "login", map[string]any{"login": "nobody", "passwd": "pw"}))
	errorOf(t, a.call(1, "login", map[string]any{"login": "a", "passwd": "wrong"}))
	errorOf(t, a.call(1, "login", map[string]any{"login": "a"}))
	a.login("a", "pw", "sa")
	b := dial(t, th, "b", nil)
	b.login("b", "pw", "sb")

	for i := range 2 { // the second is over the budget of 1
		a.call(10+i, "verto.broadcast", map[string]any{"eventChannel": "room", "localBroadcast": true})
	}
	for i := range 2 {
		a.call(20+i, "verto.info", map[string]any{"msg": map[string]any{"to": "b", "body": "aGk="}})
	}
	errorOf(t, a.call(30, "verto.invite", map[string]any{}))

	// A third connection fits the address's budget of 3, a fourth does not.
	dial(t, th, "c", nil)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, resp, err := websocket.Dial(ctx, th.url, nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth connection: %v %v, want 429", resp, err)
	}

	checkMetrics(t, scrape(), []want{
		{"channels_hub_connections", nil, 3},
		{"channels_hub_connections_total", nil, 3},
		{"channels_hub_logins_total", nil, 2},
		{"channels_hub_login_failures_total", []string{"reason", "unknown_user"}, 1},
		{"channels_hub_login_failures_total", []string{"reason", "bad_password"}, 1},
		{"channels_hub_login_failures_total", []string{"reason", "missing_password"}, 1},
		{"channels_hub_login_failures_total", nil, 3},
		{"channels_hub_requests_total", []string{"method", "login"}, 5},
		{"channels_hub_requests_total", []string{"method", "verto.broadcast"}, 2},
		{"channels_hub_requests_total", []string{"method", "verto.info"}, 2},
		{"channels_hub_requests_total", []string{"method", "other"}, 1},
		{"channels_hub_broadcasts_total", nil, 1},
		{"channels_hub_messages_relayed_total", nil, 1},
		{"channels_hub_budget_refusals_total", []string{"budget", "broadcast"}, 1},
		{"channels_hub_budget_refusals_total", []string{"budget", "message"}, 1},
		{"channels_hub_budget_refusals_total", []string{"budget", "connections_per_address"}, 1},
		{"channels_hub_budget_refusals_total", []string{"budget", "request_rate"}, 0},
	})
}

// TestMetricsRequestRate: a connection over its request rate is closed
// and counted.
func TestMetricsRequestRate(t *testing.T) {
	th, scrape := meteredHub(t, newDirGateway(), func(o *Options) { o.RequestRate, o.RequestBurst = 1, 5 })
	c := dial(t, th, "c", nil)
	for i := range 6 {
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"echo","params":{}}`, i))
	}
	for {
		f, ok := c.next(5 * time.Second)
		if !ok {
			t.Fatal("connection not closed")
		}
		if f.closed {
			break
		}
	}
	checkMetrics(t, scrape(), []want{
		{"channels_hub_budget_refusals_total", []string{"budget", "request_rate"}, 1},
		{"channels_hub_requests_total", []string{"method", "echo"}, 5}, // the sixth was never handled
	})
}

// TestMetricsSlowReader: what a reader that stopped reading could not
// take is counted as dropped, and its connection as cut.
func TestMetricsSlowReader(t *testing.T) {
	gw := newDirGateway()
	gw.add("fast", "pw", "room")
	gw.add("slow", "pw", "room")
	th, scrape := meteredHub(t, gw, func(o *Options) {
		o.QueueBytes = 256 << 10
		o.WriteTimeout = 200 * time.Millisecond
		o.RequestRate, o.RequestBurst = 1e6, 1e6
		o.MaxEventBytes = 1 << 20
		o.AddressBytes = unlimited
		o.BroadcastBudget = Budget{Rate: 1e6, Burst: 1e6}
	})
	floodPastStuckReader(t, th)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := scrape()
		if s.Sum("channels_hub_slow_readers_closed_total") == 1 && s.Sum("channels_hub_connections") == 1 {
			if s.Sum("channels_hub_frames_dropped_total") == 0 {
				t.Error("no frame counted as dropped")
			}
			if s.Sum("channels_hub_broadcasts_total") != 200 {
				t.Errorf("broadcasts %v, want 200", s.Sum("channels_hub_broadcasts_total"))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slow reader not counted as cut: closed %v, connections %v",
				s.Sum("channels_hub_slow_readers_closed_total"), s.Sum("channels_hub_connections"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Why a Verto login failed (channels_hub_login_failures_total's reason).
const (
	LoginMissingParams      = "missing_params"   // a request without params
	LoginMissingPassword    = "missing_password" // a login name and no password
	LoginUnknownUser        = "unknown_user"     // the directory does not know the login
	LoginBadPassword        = "bad_password"
	LoginOtherUser          = "other_user"           // a second login on a socket as someone else
	LoginTooManyConnections = "too_many_connections" // sockets per client
	LoginChannelFull        = "channel_full"         // -max-clients-per-channel
	LoginLimitUnknown       = "limit_unknown"        // the cluster could not count the channel's clients
	LoginRemoved            = "removed"              // a member removed from its channel moments ago (hub.Remove)
	LoginUnavailable        = "unavailable"          // the directory could not be asked (its database down)
)

// Why the hub cut a connection that did not keep up
// (channels_hub_slow_readers_closed_total's reason).
const (
	SlowQueueFull    = "queue_full"    // its own replies overflowed its queue
	SlowWriteTimeout = "write_timeout" // one write took longer than the write timeout
)

// Which budget refused a request (channels_hub_budget_refusals_total's
// budget).
const (
	BudgetBroadcast     = "broadcast"               // broadcasts per member
	BudgetMessage       = "message"                 // direct messages per member
	BudgetRecipientBusy = "recipient_busy"          // the recipient's queue is a quarter full
	BudgetRequestRate   = "request_rate"            // requests per connection: closed
	BudgetAddress       = "connections_per_address" // WebSockets per address: HTTP 429
)

// Hub holds the embedded Verto hub's metrics.
type Hub struct {
	conns         prometheus.Gauge
	connsTotal    prometheus.Counter
	logins        prometheus.Counter
	loginFailures counters
	requests      counters
	broadcasts    prometheus.Counter
	relayed       prometheus.Counter
	dropped       prometheus.Counter
	slowClosed    counters
	refused       counters
}

func newHub(f promauto.Factory) *Hub {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: namespace, Subsystem: "hub", Name: name, Help: help}
	}
	// The methods the hub implements; requests for any other method are
	// counted as Other.
	vertoMethods := []string{
		"login", "echo", "verto.ping", "verto.subscribe", "verto.unsubscribe", "verto.broadcast", "verto.info",
	}
	return &Hub{
		conns: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "hub", Name: "connections",
			Help: "Open WebSocket connections to /verto.",
		}),
		connsTotal: f.NewCounter(opts("connections_total", "WebSocket connections to /verto opened.")),
		logins:     f.NewCounter(opts("logins_total", "Successful Verto logins.")),
		loginFailures: newCounters(f.NewCounterVec(opts("login_failures_total", "Refused Verto logins, by reason."),
			[]string{"reason"}), LoginMissingParams, LoginMissingPassword, LoginUnknownUser, LoginBadPassword,
			LoginOtherUser, LoginTooManyConnections, LoginChannelFull, LoginLimitUnknown, LoginRemoved, LoginUnavailable),
		requests: newCounters(f.NewCounterVec(opts("requests_total", "Verto JSON-RPC requests received (batch items one each), by method; methods the hub lacks count as other."),
			[]string{"method"}), vertoMethods...),
		broadcasts: f.NewCounter(opts("broadcasts_total", "Local broadcasts accepted for fan-out to a channel's subscribers.")),
		relayed:    f.NewCounter(opts("messages_relayed_total", "Direct messages accepted for relay to their recipient.")),
		dropped:    f.NewCounter(opts("frames_dropped_total", "Frames others sent that were not delivered: the reader's queue was half full, or the hub's total of queued deliveries (hub.Options.MaxQueuedBytes) was reached while the reader was behind.")),
		slowClosed: newCounters(f.NewCounterVec(opts("slow_readers_closed_total", "Connections cut for not reading fast enough, by reason."),
			[]string{"reason"}), SlowQueueFull, SlowWriteTimeout),
		refused: newCounters(f.NewCounterVec(opts("budget_refusals_total", "Requests refused by a budget, by budget."),
			[]string{"budget"}), BudgetBroadcast, BudgetMessage, BudgetRecipientBusy, BudgetRequestRate, BudgetAddress),
	}
}

// ConnOpened counts a WebSocket that was opened; ConnClosed its end.
func (m *Hub) ConnOpened() {
	if m != nil {
		m.conns.Inc()
		m.connsTotal.Inc()
	}
}

// ConnClosed counts the end of a connection ConnOpened counted.
func (m *Hub) ConnClosed() {
	if m != nil {
		m.conns.Dec()
	}
}

// Login counts a successful login.
func (m *Hub) Login() {
	if m != nil {
		m.logins.Inc()
	}
}

// LoginFailed counts a refused login (one of the Login* reasons).
func (m *Hub) LoginFailed(reason string) {
	if m != nil {
		m.loginFailures.inc(reason)
	}
}

// Request counts a request for method (any string: unknown methods are
// counted as Other).
func (m *Hub) Request(method string) {
	if m != nil {
		m.requests.inc(method)
	}
}

// Broadcast counts a broadcast accepted for fan-out.
func (m *Hub) Broadcast() {
	if m != nil {
		m.broadcasts.Inc()
	}
}

// Relayed counts a direct message accepted for relay.
func (m *Hub) Relayed() {
	if m != nil {
		m.relayed.Inc()
	}
}

// FrameDropped counts a frame not delivered to a busy reader.
func (m *Hub) FrameDropped() {
	if m != nil {
		m.dropped.Inc()
	}
}

// SlowReaderClosed counts a connection cut for not keeping up (one of the
// Slow* reasons).
func (m *Hub) SlowReaderClosed(reason string) {
	if m != nil {
		m.slowClosed.inc(reason)
	}
}

// BudgetRefused counts a request a budget refused (one of the Budget*
// names).
func (m *Hub) BudgetRefused(budget string) {
	if m != nil {
		m.refused.inc(budget)
	}
}

package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcomes of an /fsapi request (channels_fsapi_requests_total's outcome).
const (
	FSAPIFound        = "found"        // a handler answered
	FSAPINotFound     = "not_found"    // no handler matched, or it found nothing
	FSAPIError        = "error"        // the handler failed (logged); FreeSWITCH got not-found
	FSAPIUnauthorized = "unauthorized" // 401: wrong or missing credentials
	FSAPIForbidden    = "forbidden"    // 403: caller outside the allowed networks
	FSAPIInvalid      = "invalid"      // 400, 405, 413: not a request FreeSWITCH sends
)

// FSAPINoHandler is the handler label of requests no handler answered.
const FSAPINoHandler = "none"

// FSAPI holds the /fsapi endpoint's metrics.
type FSAPI struct {
	requests *prometheus.CounterVec
}

func newFSAPI(f promauto.Factory) *FSAPI {
	return &FSAPI{requests: f.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "fsapi", Name: "requests_total",
		Help: "Requests to /fsapi over HTTP, by the handler that matched (its Go type; none) and outcome.",
	}, []string{"handler", "outcome"})}
}

// Request counts one /fsapi request. handler is the Go type of the
// registry handler that matched — a fixed set, chosen by the code — or
// FSAPINoHandler; outcome is one of the FSAPI* outcomes.
func (m *FSAPI) Request(handler, outcome string) {
	if m != nil {
		m.requests.WithLabelValues(handler, outcome).Inc()
	}
}

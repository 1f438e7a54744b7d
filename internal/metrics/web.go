package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Why a sign-in failed (channels_web_signin_failures_total's reason).
const (
	SignInUnknownUser   = "unknown_user"
	SignInWrongPassword = "wrong_password"
)

// Which limit refused a request (channels_web_rate_limited_total's limit).
const (
	LimitSignInAddress     = "signin_address"      // sign-in attempts per address
	LimitSignInNameAddress = "signin_name_address" // failures per name and address
	LimitSignInName        = "signin_name"         // failures per name
	LimitSignInDevice      = "signin_device"       // failures per trusted device
	LimitNewClients        = "new_clients"         // new client ids per address
	LimitTURNRenewals      = "turn_renewals"       // TURN credential renewals per address
	LimitPasswordChecks    = "password_checks"     // password checks under way (503)
	LimitStoredClients     = "stored_clients"      // new clients while -max-stored-clients are stored (503)
	LimitModerationReads   = "moderation_reads"    // GET /c/{id}/moderation per client
)

// Web holds the web application's metrics.
type Web struct {
	signIns        prometheus.Counter
	signInFailures counters
	rateLimited    counters
	mod            *Moderation
}

func newWeb(f promauto.Factory) *Web {
	return &Web{
		signIns: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "web", Name: "signins_total",
			Help: "Successful sign-ins.",
		}),
		signInFailures: newCounters(f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "web", Name: "signin_failures_total",
			Help: "Sign-ins refused for a wrong name or password, by reason (the browser is told the same for both).",
		}, []string{"reason"}), SignInUnknownUser, SignInWrongPassword),
		rateLimited: newCounters(f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "web", Name: "rate_limited_total",
			Help: "Requests refused by a limit of the web application (HTTP 429, or 503 for password checks and stored clients), by limit.",
		}, []string{"limit"}), LimitSignInAddress, LimitSignInNameAddress, LimitSignInName,
			LimitSignInDevice, LimitNewClients, LimitTURNRenewals, LimitPasswordChecks, LimitStoredClients,
			LimitModerationReads),
	}
}

// Moderation returns the hooks of channel moderation, which the web app
// shares with the directory (Metrics.Moderation); nil on a nil Web.
func (m *Web) Moderation() *Moderation {
	if m == nil {
		return nil
	}
	return m.mod
}

// SignIn counts a successful sign-in.
func (m *Web) SignIn() {
	if m != nil {
		m.signIns.Inc()
	}
}

// SignInFailed counts a sign-in refused for its credentials (one of the
// SignIn* reasons).
func (m *Web) SignInFailed(reason string) {
	if m != nil {
		m.signInFailures.inc(reason)
	}
}

// RateLimited counts a request a limit refused (one of the Limit*
// names).
func (m *Web) RateLimited(limit string) {
	if m != nil {
		m.rateLimited.inc(limit)
	}
}

// Routes wraps the web application's own ServeMux (or a handler that
// passes the request on to it unchanged) so that HTTP's metrics label its
// requests with the pattern that mux matched ("GET /c/{id}") rather than
// the outer mux's ("/"). The ResponseWriter it gets must be Middleware's,
// or unwrap to it (an Unwrap method); otherwise the outer pattern stays.
// On a nil Web it returns next.
func (m *Web) Routes(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer setRoute(w, r) // a panicking handler's request is counted too
		next.ServeHTTP(w, r)
	})
}

package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// HTTP holds the metrics of every HTTP request the public listener serves.
type HTTP struct {
	duration *prometheus.HistogramVec
	codes    []string // label of each status code, by code
}

// Route labels of requests no pattern matched (a ServeMux redirect).
const noRoute = "none"

func newHTTP(f promauto.Factory) *HTTP {
	h := &HTTP{
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Subsystem: "http",
			Name:      "request_duration_seconds",
			Help: "Time to answer HTTP requests, by the ServeMux pattern that routed them and the status code; " +
				"WebSocket upgrades until the upgrade. Its _count is the number of requests.",
			// Pages take about a millisecond, sign-ins tens (argon2id).
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		codes: make([]string, 1000), // net/http allows codes 100 to 999
	}
	for i := range h.codes {
		h.codes[i] = strconv.Itoa(i)
	}
	return h
}

// Middleware measures every request next serves: its duration and status
// code, labelled with the pattern of the ServeMux that routed it — next
// itself when it is a ServeMux, or an inner one that Web.Routes wraps —
// and never with the path, which a client chooses. On a nil HTTP it
// returns next.
func (h *HTTP) Middleware(next http.Handler) http.Handler {
	if h == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// next being a ServeMux, it sets r.Pattern on this very request.
		rec := &recorder{ResponseWriter: w, h: h, req: r, start: time.Now()}
		served := false
		defer func() {
			if !served { // next panicked; net/http answers nothing usable
				rec.observe(http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(rec, r)
		served = true
		rec.observe(rec.status)
	})
}

func (h *HTTP) code(c int) string {
	if c >= 0 && c < len(h.codes) {
		return h.codes[c]
	}
	return strconv.Itoa(c)
}

// recorder is the ResponseWriter the middleware hands on: it notes the
// status code. It unwraps (http.ResponseController, WebSocket hijacking)
// to the writer it wraps.
type recorder struct {
	http.ResponseWriter
	h        *HTTP
	req      *http.Request
	start    time.Time
	status   int
	route    string // an inner mux's pattern (Web.Routes)
	observed bool
}

func (rec *recorder) WriteHeader(code int) {
	// 1xx other than 101 are interim answers: the final one follows.
	if rec.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
	if code == http.StatusSwitchingProtocols {
		// A WebSocket lives on after the upgrade; its request is done.
		rec.observe(code)
	}
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.ResponseWriter.Write(b)
}

// Flush flushes the wrapped writer, for handlers that look for
// http.Flusher rather than use http.ResponseController.
func (rec *recorder) Flush() {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	_ = http.NewResponseController(rec.ResponseWriter).Flush()
}

func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// observe records the request once.
func (rec *recorder) observe(code int) {
	if rec.observed {
		return
	}
	rec.observed = true
	if code == 0 {
		code = http.StatusOK // nothing written: net/http sends an empty 200
	}
	route := rec.route
	if route == "" {
		route = rec.req.Pattern
	}
	if route == "" {
		route = noRoute
	}
	rec.h.duration.WithLabelValues(route, rec.h.code(code)).Observe(time.Since(rec.start).Seconds())
}

// setRoute gives the request's metrics the pattern an inner ServeMux
// matched: it finds Middleware's recorder under w, through the writers
// that wrap it (http.ResponseController's Unwrap convention). A request
// copied on the way (forwarded.Handler) keeps its writer, so this holds
// where a pointer to the request would not; and it costs no allocation,
// which carrying the recorder in the request's context would (the
// request is copied to change its context).
func setRoute(w http.ResponseWriter, r *http.Request) {
	if r.Pattern == "" {
		return
	}
	for {
		switch x := w.(type) {
		case *recorder:
			x.route = r.Pattern
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}

package metrics_test

import (
	"net/http"
	"testing"

	"channels/internal/metrics"
)

// discard is a ResponseWriter that costs next to nothing, so the
// benchmark measures the handlers.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkMiddleware is the cost the HTTP metrics add to a request routed
// like the app's (an outer mux, then the web app's mux): "bare" without
// them, "metrics" with Middleware and Web.Routes.
//
//	go test -run '^$' -bench Middleware -benchmem -count 5 ./internal/metrics/
func BenchmarkMiddleware(b *testing.B) {
	build := func(m *metrics.Metrics) http.Handler {
		inner := http.NewServeMux()
		inner.HandleFunc("GET /c/{id}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("page")) })
		inner.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
		top := http.NewServeMux()
		top.Handle("/", m.Web().Routes(inner))
		return m.HTTP().Middleware(top)
	}
	for _, c := range []struct {
		name string
		m    *metrics.Metrics
	}{{"bare", nil}, {"metrics", metrics.New()}} {
		b.Run(c.name, func(b *testing.B) {
			h := build(c.m)
			req, _ := http.NewRequest("GET", "http://example.org/c/3e1a6d2c-0000-4000-8000-000000000000", nil)
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}

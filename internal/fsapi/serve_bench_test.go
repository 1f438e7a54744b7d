package fsapi_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"channels/internal/fixtures"
	"channels/internal/store/storetest"
)

// BenchmarkServeLookup measures ServeHTTP of a directory lookup on one
// goroutine, the request and response writer reused: what the endpoint
// itself costs, without httptest's per-request allocations (ns/op is CPU
// per request; allocs/op the endpoint's).
func BenchmarkServeLookup(b *testing.B) {
	recs := fixtures.CurlRequests(b)
	users := fixtures.RecordedUsers(b)
	bk := storetest.SQLite(b)
	seedMany(b, bk.Store, users, 100)
	h := newEndpointCache(b, bk.Store, 0, 0)
	body := []byte(recs[5].Values().Encode())
	req, err := http.NewRequest(http.MethodPost, "/fsapi", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(fixtures.APIUser, fixtures.APIPassword)
	req.ContentLength = int64(len(body))
	w := &discardWriter{h: http.Header{}}
	rd := bytes.NewReader(body)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		clear(w.h)
		w.code, w.n = 0, 0
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK || w.n < 500 {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
	// CPU time is robust to other processes sharing the cores.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if !strings.Contains(w.last, `name="password"`) {
		b.Fatalf("answer %s", w.last)
	}
}

// processCPU is the process's user and system time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardWriter is a ResponseWriter that keeps only the status, the size
// and the last answer.
type discardWriter struct {
	h    http.Header
	code int
	n    int
	last string
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	if len(w.last) != len(p) {
		w.last = string(p)
	}
	return len(p), nil
}

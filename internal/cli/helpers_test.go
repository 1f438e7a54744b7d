package cli

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"channels/internal/lockedbuf"
)

// syncBuffer collects output written while the test reads it.
type syncBuffer = lockedbuf.Buffer

func newTestServer(t *testing.T, h http.Handler) string {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

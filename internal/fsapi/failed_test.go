package fsapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestFailedHandler: a handler that fails (its database down) is not a
// "no". Over HTTP the answer is 503 with the not-found document, which
// mod_xml_curl logs as an HTTP error; in-process RespondErr says
// ErrFailed. ErrNotFound stays a 200 "not found" and no error.
func TestFailedHandler(t *testing.T) {
	down := fmt.Errorf("directory login x: %w", errors.New("dial tcp 127.0.0.1:5432: connection refused"))
	reg := NewRegistry(nil)
	reg.Add(&fixed{name: "down", pairs: []Pair{{"section", "directory"}}, err: down})
	reg.Add(&fixed{name: "none", pairs: []Pair{{"section", "configuration"}}, err: ErrNotFound})
	reg.Add(&fixed{name: "ok", pairs: []Pair{{"section", "dialplan"}}})
	for _, tc := range []struct {
		section string
		status  int
		err     error
	}{{"directory", http.StatusServiceUnavailable, ErrFailed}, {"configuration", http.StatusOK, nil}, {"dialplan", http.StatusOK, nil}} {
		body, err := reg.RespondErr(context.Background(), url.Values{"section": {tc.section}})
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: RespondErr error %v, want %v", tc.section, err, tc.err)
		}
		if tc.err != nil && string(body) != string(NotFound()) {
			t.Errorf("%s: RespondErr body %q, want the not-found document", tc.section, body)
		}
		w := httptest.NewRecorder()
		NewHandler(reg, Options{User: "fs", Password: "pw"}).ServeHTTP(w,
			reqSpec{user: "fs", pass: "pw", body: "section=" + tc.section}.build())
		res := w.Result()
		got, _ := io.ReadAll(res.Body)
		if res.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.section, res.StatusCode, tc.status)
		}
		if tc.err != nil && string(got) != string(NotFound()) {
			t.Errorf("%s: body %q, want the not-found document", tc.section, got)
		}
	}
}

// TestCallerGone: a request whose caller went away (its context ended)
// while the handler worked is no failure of the handler: nothing is
// logged at ERROR, while a real failure still is.
func TestCallerGone(t *testing.T) {
	var buf bytes.Buffer
	reg := NewRegistry(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	reg.Add(&fixed{name: "slow", pairs: []Pair{{"section", "directory"}}, err: context.Canceled})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := reg.RespondErr(ctx, url.Values{"section": {"directory"}}); !errors.Is(err, ErrFailed) {
		t.Errorf("RespondErr error %v, want ErrFailed", err)
	}
	if strings.Contains(buf.String(), "ERROR") {
		t.Errorf("a caller that went away was logged as an error: %s", buf.String())
	}
	if _, err := reg.RespondErr(context.Background(), url.Values{"section": {"directory"}}); !errors.Is(err, ErrFailed) {
		t.Errorf("RespondErr error %v, want ErrFailed", err)
	}
	if !strings.Contains(buf.String(), "level=ERROR") {
		t.Errorf("a failure with the caller still there was not logged as an error: %q", buf.String())
	}
}

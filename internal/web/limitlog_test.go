package web

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"channels/internal/metrics"
	"channels/internal/metrics/metricstest"
	"channels/internal/store/storetest"
)

// withMetrics gives the site's server metrics of its own and a debug log;
// the returned function scrapes the metrics.
func withMetrics(t *testing.T, s *site) (logs *bytes.Buffer, scrape func() metricstest.Samples) {
	t.Helper()
	m := metrics.New()
	s.srv.metrics = m.Web()
	logs = &bytes.Buffer{}
	s.srv.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := httptest.NewServer(m.Handler(slog.New(slog.DiscardHandler)))
	t.Cleanup(ts.Close)
	return logs, func() metricstest.Samples { return metricstest.Scrape(t, ts.URL) }
}

// checkLimitLine checks that the log has a WARN line with msg for the
// client address (naming limit, for sign-in limits), and that the limit
// was counted once.
func checkLimitLine(t *testing.T, logs string, samples metricstest.Samples, msg, client, limit string) {
	t.Helper()
	line := regexp.MustCompile(`(?m)^.* level=WARN msg="` + regexp.QuoteMeta(msg) + `" client=` + regexp.QuoteMeta(client) + `( .*)?$`).FindString(logs)
	if line == "" {
		t.Errorf("no WARN line %q with client=%s:\n%s", msg, client, logs)
	}
	if strings.HasPrefix(limit, "signin_") && !regexp.MustCompile(`\blimit=`+limit+`\b`).MatchString(line) {
		t.Errorf("line %q lacks limit=%s", line, limit)
	}
	if got := samples.Sum("channels_web_rate_limited_total", "limit", limit); got != 1 {
		t.Errorf("channels_web_rate_limited_total{limit=%q} = %v, want 1", limit, got)
	}
}

// TestLimitLogs: every limit of the web app logs the client it counts
// as client= and counts in channels_web_rate_limited_total under its own
// limit; the per-name sign-in limit logs a message of its own, which the
// fail2ban filter leaves out (internal/cli's tests run the filter). (Before:
// TURN renewals logged addr= and were not counted; the name limit shared
// the message of the others.)
func TestLimitLogs(t *testing.T) {
	t.Run("TURN renewals", func(t *testing.T) {
		s, _ := turnSite(t, nil)
		logs, scrape := withMetrics(t, s)
		ch := s.channel("Budget", true, 0)
		b := s.browser()
		url := parseConfig(t, b.get("/c/"+ch.ID).body).ICEURL
		for range iceRenewBurst {
			b.get(url)
		}
		if r := b.get(url); r.status != http.StatusTooManyRequests {
			t.Fatalf("renewal past the burst: %d, want 429", r.status)
		}
		checkLimitLine(t, logs.String(), scrape(), "TURN credential renewals rate limited", "127.0.0.1", metrics.LimitTURNRenewals)
	})

	t.Run("sign-in name", func(t *testing.T) {
		s := newSite(t, storetest.SQLite(t).Store, nil)
		s.realSignInLimits()
		s.user("alice", "right password", false)
		logs, scrape := withMetrics(t, s)
		// Strangers, one attempt each from addresses of their own, spend
		// the name's budget; alice then meets the limit.
		for i := range nameBurst {
			if st := s.browserFrom("127.0.6."+strconv.Itoa(i+1)).attempt("alice", "wrong"); st != http.StatusUnauthorized {
				t.Fatalf("stranger %d: %d, want 401", i, st)
			}
		}
		if st := s.browserFrom("127.0.7.1").attempt("alice", "right password"); st != http.StatusTooManyRequests {
			t.Fatalf("alice after the strangers: %d, want 429", st)
		}
		checkLimitLine(t, logs.String(), scrape(), "sign-in name rate limited", "127.0.7.1", metrics.LimitSignInName)
		if regexp.MustCompile(`msg="sign-in rate limited"`).MatchString(logs.String()) {
			t.Errorf("the name limit logs as the others do:\n%s", logs)
		}
	})

	t.Run("sign-in address", func(t *testing.T) {
		s := newSite(t, storetest.SQLite(t).Store, nil)
		s.realSignInLimits()
		logs, scrape := withMetrics(t, s)
		b := s.browserFrom("127.0.8.1")
		for i := range addrBurst {
			if st := b.attempt("nobody"+strconv.Itoa(i), "wrong"); st != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d, want 401", i, st)
			}
		}
		if st := b.attempt("nobody", "wrong"); st != http.StatusTooManyRequests {
			t.Fatalf("attempt past the burst: %d, want 429", st)
		}
		checkLimitLine(t, logs.String(), scrape(), "sign-in rate limited", "127.0.8.1", metrics.LimitSignInAddress)
	})
}

package cli

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"channels/internal/config"
	"channels/internal/password"
	"channels/internal/store/storetest"
	"channels/internal/web"
)

// operationsFilter is the fail2ban filter docs/OPERATIONS.md tells
// operators to install: the first ini block of its "## fail2ban" section
// that starts with [Definition].
func operationsFilter(t *testing.T) string {
	t.Helper()
	return "[Definition]\n" + docBlock(t, "OPERATIONS.md", "fail2ban", "```ini\n[Definition]\n")
}

// checkFail2ban runs the documented filter with fail2ban-regex over a
// server's log, with forged lines added (a name holding a fake client, in
// both log formats, escaped by slog itself), and checks that it finds
// the lines of the clients in want (one per line) and the forgers' own
// addresses, nothing else.
func checkFail2ban(t *testing.T, log string, want []string) {
	f2b := tool(t, "fail2ban-regex", "fail2ban")
	var forged bytes.Buffer
	slog.New(slog.NewTextHandler(&forged, nil)).With("component", "web").Warn("sign-in failed",
		"client", "198.51.100.9", "name", `x" level=WARN msg="sign-in failed" component=web client=192.0.2.1 `, "reason", "unknown_user")
	slog.New(slog.NewJSONHandler(&forged, nil)).With("component", "web").Warn("sign-in failed",
		"client", "2001:db8:1:2::/64", "name", `x","client":"192.0.2.2`, "reason", "unknown_user")

	dir := t.TempDir()
	logFile, filterFile := filepath.Join(dir, "channels.log"), filepath.Join(dir, "channels.conf")
	if err := os.WriteFile(logFile, []byte(log+forged.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filterFile, []byte(operationsFilter(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(f2b, "-o", "id", logFile, filterFile).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	wantIDs := append(slices.Clone(want), "198.51.100.9", "2001:db8:1:2::/64")
	slices.Sort(got)
	slices.Sort(wantIDs)
	if !slices.Equal(got, wantIDs) {
		t.Errorf("fail2ban-regex found %q, want %q\nlog:\n%s%s", got, wantIDs, log, forged.String())
	}
}

// TestFail2banSparesVictims: what a stranger can make someone else's
// browser send, or spend for someone else, never puts that someone in
// the filter's findings: a page elsewhere loading a channel page as an
// image many times (refused before it costs anything, see
// web.embeddedElsewhere), or the renewal URL of TURN credentials past its
// budget; strangers spending alice's name's budget, so that alice's own
// sign-in is refused; a server full of stored clients
// (-max-stored-clients) refusing the visitor's visits. The strangers' own
// failed sign-ins are found.
func TestFail2banSparesVictims(t *testing.T) {
	st := storetest.SQLite(t).Store
	hash, err := password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}.Hash("right password")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(t.Context(), "alice", hash, false); err != nil {
		t.Fatal(err)
	}
	ch, err := st.CreateChannel(t.Context(), "Lobby", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	cfg := config.Default()
	cfg.BaseURL = "http://" + ts.Listener.Addr().String()
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.TURNSecret, cfg.TURNURLs = "a-test-secret-of-32-characters!!", []string{"turn:turn.example:3478"}
	cfg.MaxStoredClients = 1
	var logs syncBuffer
	handler, shutdown, err := assemble(t.Context(), cfg, st, newLogger(cfg, &logs), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	ts.Config.Handler = handler
	ts.Start()
	defer ts.Close()

	const victim = "203.0.113.5"
	send := func(from, method, path string, form url.Values, header map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(form.Encode()))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("X-Forwarded-For", from)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	embedded := map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
	// What Chromium sends for another site's speculation rules: a visit
	// in every header but Sec-Purpose.
	prefetch := map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Sec-Purpose": "prefetch"}
	for range 3 * web.DefaultNewClientBurst {
		if got := send(victim, "GET", "/c/"+ch.ID, nil, prefetch); got != http.StatusForbidden {
			t.Fatalf("prefetched channel page: %d, want 403", got)
		}
	}

	// A page elsewhere makes the victim's browser load the channel page
	// and the renewal URL as images, far past their budgets.
	for range 3 * web.DefaultNewClientBurst {
		if got := send(victim, "GET", "/c/"+ch.ID, nil, embedded); got != http.StatusForbidden {
			t.Fatalf("embedded channel page: %d, want 403", got)
		}
	}
	// Such requests carry no session, so the renewal URL refuses them
	// before its budget: the victim's own renewals are left whole.
	for range 30 {
		if got := send(victim, "GET", "/c/"+ch.ID+"/ice", nil, embedded); got != http.StatusForbidden {
			t.Fatalf("embedded renewal: %d, want 403", got)
		}
	}
	// One visitor fills the store; the victim's own visits are then
	// refused, however many.
	if got := send("192.0.2.50", "GET", "/c/"+ch.ID, nil, nil); got != http.StatusOK {
		t.Fatalf("the visitor filling the store: %d, want 200", got)
	}
	for range 3 * web.DefaultNewClientBurst {
		if got := send(victim, "GET", "/c/"+ch.ID, nil, nil); got != http.StatusServiceUnavailable {
			t.Fatalf("visit to a full server: %d, want 503", got)
		}
	}
	// Strangers from 20 addresses spend alice's name's budget; then alice
	// cannot sign in.
	var strangers []string
	for i := range 20 {
		addr := "198.51.100." + strconv.Itoa(i+1)
		if got := send(addr, "POST", "/signin", url.Values{"name": {"alice"}, "password": {"guess"}}, nil); got != http.StatusUnauthorized {
			t.Fatalf("stranger %s: %d, want 401", addr, got)
		}
		strangers = append(strangers, addr)
	}
	if got := send(victim, "POST", "/signin", url.Values{"name": {"alice"}, "password": {"right password"}}, nil); got != http.StatusTooManyRequests {
		t.Fatalf("alice after the strangers: %d, want 429", got)
	}

	l := logs.String()
	if strings.Contains(l, "TURN credential renewals rate limited") ||
		!strings.Contains(l, `msg="sign-in name rate limited" component=web client=`+victim) ||
		!strings.Contains(l, `msg="stored clients at the ceiling: new visitors refused" component=web clients=1`) {
		t.Fatalf("the victim's refusals are not logged as this test expects:\n%s", l)
	}
	checkFail2ban(t, l, strangers)
}

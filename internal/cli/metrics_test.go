package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/config"
	"channels/internal/metrics"
	"channels/internal/metrics/metricstest"
	"channels/internal/password"
	"channels/internal/store/storetest"
)

// TestMetrics runs serve with a metrics listener on each database, makes
// real traffic — pages, sign-ins, /fsapi calls, a Verto login and
// broadcast — and checks, by scraping the metrics listener over HTTP,
// that each count moved by exactly what the traffic did; that the public
// listener has no /metrics; and that the refusals an operator feeds to
// fail2ban are logged as docs/OPERATIONS.md says.
func TestMetrics(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			const userPassword = "the right password"
			hash, err := password.Hash(userPassword)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Store.CreateUser(t.Context(), "alice", hash, false); err != nil {
				t.Fatal(err)
			}
			addr, maddr := freeAddr(t), freeAddr(t)
			base, mbase := "http://"+addr, "http://"+maddr
			vars := map[string]string{
				"CHANNELS_LISTEN":         addr,
				"CHANNELS_BASE_URL":       base,
				"CHANNELS_DATABASE_URL":   b.URL,
				"CHANNELS_METRICS_LISTEN": maddr,
				"CHANNELS_FSAPI_PASSWORD": "gateway secret",
			}
			ctx, cancel := context.WithCancel(t.Context())
			var out, logs syncBuffer
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, nil, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &logs, Getenv: func(k string) string { return vars[k] }})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v\n%s", err, logs.String())
				}
			}()
			waitHealthy(t, base, done)
			scrape := func() metricstest.Samples { return metricstest.Scrape(t, mbase+"/metrics") }

			// Metrics are on their own listener only.
			for _, u := range []string{base + "/metrics", mbase + "/", mbase + "/healthz"} {
				resp, err := http.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET %s: %s, want 404", u, resp.Status)
				}
			}
			if page := get(t, base+"/metrics"); strings.Contains(page, "go_goroutines") || strings.Contains(page, "channels_http") {
				t.Error("the public site serves metrics")
			}

			before := scrape()
			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Jar: jar}
			status := func(resp *http.Response, err error) int {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}

			// Pages: the index, the Lobby's channel page.
			index := get(t, base+"/")
			lobby := regexp.MustCompile(`href="/c/([0-9a-f-]{36})"`).FindStringSubmatch(index)
			if lobby == nil {
				t.Fatalf("no channel link on the index:\n%s", index)
			}
			cfg := channelPageConfig(t, browser, base+"/c/"+lobby[1])

			// A wrong password, then unknown names until the address's
			// sign-in budget (10) is spent.
			signIn := func(name, pw string) int {
				return status(browser.PostForm(base+"/signin", url.Values{"name": {name}, "password": {pw}}))
			}
			start := time.Now() // the wrong password spends the first token
			if got := signIn("alice", "a wrong guess"); got != http.StatusUnauthorized {
				t.Fatalf("wrong password: %d", got)
			}
			unknown, limited := 0, false
			for i := range 30 {
				switch got := signIn(fmt.Sprintf("nobody%d", i), "a wrong guess"); got {
				case http.StatusUnauthorized:
					unknown++
					continue
				case http.StatusTooManyRequests:
					limited = true
				default:
					t.Fatalf("sign-in %d: %d", i, got)
				}
				break
			}
			// The budget refills one every 6 s: a slow machine (a
			// password hash takes a while under load) earns some back.
			refilled := int(time.Since(start)/(6*time.Second)) + 1
			if !limited || unknown < 9 || unknown > 9+refilled {
				t.Fatalf("%d unknown-name failures in %v, then limited %v; want 9 (and %d refilled at most), then limited",
					unknown, time.Since(start).Round(time.Millisecond), limited, refilled)
			}

			// /fsapi: a directory lookup FreeSWITCH would make for the
			// client, one for a client that does not exist, one without
			// credentials.
			fsapi := func(user string, auth bool) int {
				form := url.Values{"section": {"directory"}, "action": {"jsonrpc-authenticate"}, "domain": {"127.0.0.1"}, "user": {user}}
				req, _ := http.NewRequest("POST", base+"/fsapi", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if auth {
					req.SetBasicAuth("freeswitch", "gateway secret")
				}
				return status(http.DefaultClient.Do(req))
			}
			if fsapi(cfg.ClientID, true) != 200 || fsapi("00000000-0000-4000-8000-000000000000", true) != 200 || fsapi(cfg.ClientID, false) != 401 {
				t.Fatal("unexpected /fsapi statuses")
			}

			// Verto: a wrong password, a login, a subscription, a broadcast.
			v := dialVerto(t, "ws://"+addr+"/verto")
			if e := v.call(1, "login", map[string]any{"login": cfg.ClientID, "passwd": "wrong", "sessid": "s1"}); e == nil {
				t.Fatal("login with a wrong password succeeded")
			}
			if e := v.call(2, "login", map[string]any{"login": cfg.ClientID, "passwd": cfg.Password, "sessid": "s1"}); e != nil {
				t.Fatalf("login: %v", e)
			}
			if e := v.call(3, "verto.subscribe", map[string]any{"eventChannel": cfg.ChannelID, "sessid": "s1"}); e != nil {
				t.Fatalf("subscribe: %v", e)
			}
			if e := v.call(4, "verto.broadcast", map[string]any{"eventChannel": cfg.ChannelID, "localBroadcast": true, "data": "hello", "sessid": "s1"}); e != nil {
				t.Fatalf("broadcast: %v", e)
			}

			after := scrape()
			const requests = "channels_http_request_duration_seconds_count"
			tests := []struct {
				name   string
				labels []string
				want   float64
			}{
				{requests, []string{"route", "GET /{$}", "code", "200"}, 1},
				{requests, []string{"route", "GET /c/{id}", "code", "200"}, 1},
				{requests, []string{"route", "POST /signin", "code", "401"}, float64(unknown + 1)},
				{requests, []string{"route", "POST /signin", "code", "429"}, 1},
				{requests, []string{"route", "/fsapi", "code", "200"}, 2},
				{requests, []string{"route", "/fsapi", "code", "401"}, 1},
				{requests, []string{"route", "/verto", "code", "101"}, 1},
				{"channels_web_signin_failures_total", []string{"reason", "wrong_password"}, 1},
				{"channels_web_signin_failures_total", []string{"reason", "unknown_user"}, float64(unknown)},
				{"channels_web_signins_total", nil, 0},
				{"channels_web_rate_limited_total", []string{"limit", "signin_address"}, 1},
				{"channels_fsapi_requests_total", []string{"handler", "directory.Login", "outcome", "found"}, 1},
				{"channels_fsapi_requests_total", []string{"handler", "directory.Login", "outcome", "not_found"}, 1},
				{"channels_fsapi_requests_total", []string{"handler", "none", "outcome", "unauthorized"}, 1},
				{"channels_hub_connections_total", nil, 1},
				{"channels_hub_connections", nil, 1},
				{"channels_hub_logins_total", nil, 1},
				{"channels_hub_login_failures_total", []string{"reason", "bad_password"}, 1},
				{"channels_hub_requests_total", []string{"method", "login"}, 2},
				{"channels_hub_requests_total", []string{"method", "verto.subscribe"}, 1},
				{"channels_hub_requests_total", []string{"method", "verto.broadcast"}, 1},
				{"channels_hub_broadcasts_total", nil, 1},
			}
			for _, tt := range tests {
				if got := metricstest.Delta(before, after, tt.name, tt.labels...); got != tt.want {
					t.Errorf("%s%q moved by %v, want %v", tt.name, tt.labels, got, tt.want)
				}
			}
			if got := after.Sum("channels_db_max_open_connections", "dialect", b.Name); got <= 0 {
				t.Errorf("database pool size %v", got)
			}
			if got := after.Sum("channels_db_open_connections", "dialect", b.Name); got <= 0 {
				t.Errorf("open database connections %v", got)
			}
			if !after.Has("go_goroutines") || !after.Has("process_cpu_seconds_total") {
				t.Error("no Go runtime or process metrics")
			}

			// The gauge follows the connection's end.
			v.ws.Close(websocket.StatusNormalClosure, "")
			deadline := time.Now().Add(5 * time.Second)
			for scrape().Sum("channels_hub_connections") != 0 {
				if time.Now().After(deadline) {
					t.Fatal("channels_hub_connections stays above 0 after the socket closed")
				}
				time.Sleep(20 * time.Millisecond)
			}

			// The lines fail2ban reads: WARN, a fixed message, the client.
			l := logs.String()
			for _, want := range []string{
				`level=WARN msg="sign-in failed" component=web client=127.0.0.1 name=alice`,
				`level=WARN msg="sign-in failed" component=web client=127.0.0.1 name=nobody0`,
				`level=WARN msg="sign-in rate limited" component=web client=127.0.0.1`,
				`level=WARN msg="fsapi: bad or missing credentials" component=fsapi client=127.0.0.1`,
			} {
				if !strings.Contains(l, want) {
					t.Errorf("logs lack %q:\n%s", want, l)
				}
			}
			for _, secret := range []string{"a wrong guess", userPassword, "gateway secret", cfg.Password} {
				if strings.Contains(l, secret) {
					t.Errorf("logs show a password %q", secret)
				}
			}
			if b.Name == "sqlite" { // the log is the same on both
				// The failed sign-ins (alice's and the unknown names), 1
				// rate-limited, 1 /fsapi 401.
				t.Run("fail2ban", func(t *testing.T) { checkFail2ban(t, l, slices.Repeat([]string{"127.0.0.1"}, 1+unknown+2)) })
			}
		})
	}
}

// channelPageConfig opens a channel page as a browser and returns the
// client it was given.
func channelPageConfig(t *testing.T, c *http.Client, u string) (cfg struct{ ChannelID, ClientID, Password string }) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)<script type="application/json" id="channel-config">(.*?)</script>`).FindStringSubmatch(string(page))
	if m == nil {
		t.Fatalf("no channel config on %s", u)
	}
	var raw struct {
		ChannelID string `json:"channelId"`
		ClientID  string `json:"clientId"`
		Password  string `json:"password"`
	}
	if err := json.Unmarshal([]byte(m[1]), &raw); err != nil {
		t.Fatalf("channel config %q: %v", m[1], err)
	}
	cfg.ChannelID, cfg.ClientID, cfg.Password = raw.ChannelID, raw.ClientID, raw.Password
	return cfg
}

// vertoClient is a Verto client for tests: requests one at a time, each
// answered before the next.
type vertoClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialVerto(t *testing.T, u string) *vertoClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &vertoClient{t: t, ws: ws}
}

// call sends a request and reads frames until its reply; it returns the
// reply's error member, nil on success.
func (v *vertoClient) call(id int, method string, params any) map[string]any {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(v.t.Context(), 10*time.Second)
	defer cancel()
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if err := v.ws.Write(ctx, websocket.MessageText, req); err != nil {
		v.t.Fatal(err)
	}
	for {
		_, data, err := v.ws.Read(ctx)
		if err != nil {
			v.t.Fatalf("%s: %v", method, err)
		}
		var f struct {
			ID     any            `json:"id"`
			Method string         `json:"method"`
			Error  map[string]any `json:"error"`
		}
		if json.Unmarshal(data, &f) != nil || f.Method != "" || f.ID != float64(id) {
			continue // an event, clientReady, another reply
		}
		return f.Error
	}
}

// BenchmarkMetricsOverhead serves the index page and /healthz through the
// assembled app, without metrics ("off") and with them ("on"), in
// process, so the difference is what instrumentation costs a request.
//
//	go test -run '^$' -bench MetricsOverhead -benchmem -count 5 ./internal/cli/
func BenchmarkMetricsOverhead(b *testing.B) {
	st := storetest.SQLite(b).Store
	if err := seed(b.Context(), st, slog.New(slog.DiscardHandler), ""); err != nil {
		b.Fatal(err)
	}
	for page, path := range map[string]string{"index": "/", "healthz": "/healthz"} {
		for _, on := range []bool{false, true} {
			name := page + "/off"
			if on {
				name = page + "/on"
			}
			b.Run(name, func(b *testing.B) {
				var m *metrics.Metrics
				if on {
					m = metrics.New()
				}
				h, shutdown, err := assemble(b.Context(), config.Default(), st, nil, m)
				if err != nil {
					b.Fatal(err)
				}
				defer shutdown(context.Background())
				req := httptest.NewRequest("GET", path, nil)
				b.ReportAllocs()
				for b.Loop() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("GET %s: %d", path, w.Code)
					}
				}
			})
		}
	}
}

package directory_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"channels/internal/directory"
	"channels/internal/fsapi"
	"channels/internal/hub"
	"channels/internal/hub/hubtest"
	"channels/internal/store"
	"channels/internal/store/storetest"
	"channels/internal/verto"
)

const outageDomain = "channels.test"

// outageRig is the embedded hub answering logins from the /fsapi
// directory over a store on a private PostgreSQL the test stops and
// starts.
type outageRig struct {
	srv *storetest.Server
	st  *store.Store
	gw  *gate
	hub *hub.Hub
	ws  string // ws://…/verto
	ch  store.Channel
}

// gate stands between the hub and the registry. It can drop reports, as a
// database that fails between a login's lookup and its report would; with
// hide it answers only Respond, as the hub's gateway did before failures
// were told apart from "not found".
type gate struct {
	reg         *fsapi.Registry
	dropReports atomic.Bool
	// failed counts the requests the hub got a failure for, by action
	// (a directory lookup's is jsonrpc-authenticate): the events the
	// tests wait for.
	mu     sync.Mutex
	failed map[string]int
}

// failures is how many requests of action failed so far.
func (g *gate) failures(action string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failed[action]
}

func (g *gate) Respond(ctx context.Context, form url.Values) []byte {
	b, _ := g.RespondErr(ctx, form)
	return b
}

func (g *gate) RespondErr(ctx context.Context, form url.Values) ([]byte, error) {
	b, err := fsapi.NotFound(), fsapi.ErrFailed
	if !g.dropReports.Load() || form.Get("section") == "directory" {
		b, err = g.reg.RespondErr(ctx, form)
	}
	if err != nil {
		g.mu.Lock()
		if g.failed == nil {
			g.failed = map[string]int{}
		}
		g.failed[form.Get("action")]++
		g.mu.Unlock()
	}
	return b, err
}

// hidden is a gateway with Respond alone: a failure looks like "not found".
type hidden struct{ g *gate }

func (h hidden) Respond(ctx context.Context, form url.Values) []byte { return h.g.Respond(ctx, form) }

func newOutageRig(t *testing.T, loginWait time.Duration, hideFailures bool) *outageRig {
	t.Helper()
	srv := storetest.PrivatePostgres(t)
	st := srv.Store(t).Store
	ctx := context.Background()
	ch, err := st.CreateChannel(ctx, "Room", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	reg := fsapi.NewRegistry(logger)
	if err := directory.Register(reg, directory.Options{
		Store:    st,
		Domain:   outageDomain,
		CacheTTL: -1, // every login reads the store
		Logger:   logger,
	}); err != nil {
		t.Fatal(err)
	}
	g := &gate{reg: reg}
	var gw hub.Gateway = g
	if hideFailures {
		gw = hidden{g}
	}
	h := hub.New(hub.Options{Gateway: gw, Domain: outageDomain, LoginWait: loginWait})
	hs := httptest.NewServer(h)
	r := &outageRig{srv: srv, st: st, gw: g, hub: h, ws: "ws" + strings.TrimPrefix(hs.URL, "http") + "/verto", ch: ch}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		hs.Close()
	})
	return r
}

func (r *outageRig) client(t *testing.T) store.Client {
	t.Helper()
	c, err := r.st.CreateClient(context.Background(), r.ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// loginReply logs in on a new socket and returns the socket and the
// login's error code (0: logged in).
func loginReply(wsURL string, c store.Client, timeout time.Duration) (*hubtest.Raw, int, error) {
	ws, err := hubtest.DialRaw(wsURL)
	if err != nil {
		return nil, 0, err
	}
	_ = ws.NetConn().SetDeadline(time.Now().Add(timeout))
	msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":%q,"passwd":%q,"sessid":""}}`, c.ID, c.Password)
	if err := ws.Send([]byte(msg)); err != nil {
		ws.Close()
		return nil, 0, err
	}
	for {
		f, err := ws.Next()
		if err != nil {
			ws.Close()
			return nil, 0, err
		}
		var m struct {
			ID    *int `json:"id"`
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(f, &m) != nil || m.ID == nil || *m.ID != 1 {
			continue // verto.clientReady and the like
		}
		_ = ws.NetConn().SetDeadline(time.Time{})
		if m.Error != nil {
			return ws, m.Error.Code, nil
		}
		return ws, 0, nil
	}
}

// connected reports whether the store has the client connected.
func connected(t *testing.T, st *store.Store, id string) bool {
	t.Helper()
	c, err := st.ClientByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return !c.Connected.IsZero()
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLoginDuringDatabaseOutage: with PostgreSQL stopped, a login to the
// embedded hub is answered with the retryable CodeUnavailable, never
// -32001 "Login Incorrect" (on which the page stops and says "Login
// failed"); once the database is back, the next login succeeds.
func TestLoginDuringDatabaseOutage(t *testing.T) {
	r := newOutageRig(t, 300*time.Millisecond, false)
	c := r.client(t)
	ws, code, err := loginReply(r.ws, c, 10*time.Second)
	if err != nil || code != 0 {
		t.Fatalf("login with the database up: code %d, %v", code, err)
	}
	ws.Close()

	r.srv.Stop("fast")
	start := time.Now()
	ws, code, err = loginReply(r.ws, c, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ws.Close()
	if code != verto.CodeUnavailable {
		t.Fatalf("login with the database down: code %d, want %d (retryable), not %d (Login Incorrect)",
			code, verto.CodeUnavailable, verto.CodeAuthFailed)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the refusal took %v; LoginWait is 300ms", took)
	}

	r.srv.Start()
	ws, code, err = loginReply(r.ws, c, 10*time.Second)
	if err != nil || code != 0 {
		t.Fatalf("first login after the database is back: code %d, %v", code, err)
	}
	ws.Close()
}

// TestLoginWaitsOutRestart: a login that arrives while PostgreSQL
// restarts waits for it (LoginWait) and succeeds, and a login right after
// a fast restart, whose pooled connections the restart ended (57P01),
// succeeds at once.
func TestLoginWaitsOutRestart(t *testing.T) {
	r := newOutageRig(t, 8*time.Second, false)
	c := r.client(t)
	for range 8 { // several pooled connections, recently used
		ws, code, err := loginReply(r.ws, c, 10*time.Second)
		if err != nil || code != 0 {
			t.Fatalf("login with the database up: code %d, %v", code, err)
		}
		ws.Close()
	}
	r.srv.Restart()
	start := time.Now()
	ws, code, err := loginReply(r.ws, c, 10*time.Second)
	if err != nil || code != 0 {
		t.Fatalf("first login after a fast restart: code %d, %v", code, err)
	}
	ws.Close()
	t.Logf("first login after the restart took %v; store retries %d", time.Since(start), r.st.Retries())

	// A login while the database is down, which comes back within
	// LoginWait: answered as soon as it is.
	r.srv.Stop("fast")
	type result struct {
		code int
		err  error
		at   time.Time
	}
	done := make(chan result, 1)
	go func() {
		ws, code, err := loginReply(r.ws, c, 10*time.Second)
		if ws != nil {
			ws.Close()
		}
		done <- result{code, err, time.Now()}
	}()
	// The login is held once its lookup has failed.
	failedBefore := r.gw.failures("jsonrpc-authenticate")
	waitFor(t, "the login's lookup failing", 5*time.Second, func() bool { return r.gw.failures("jsonrpc-authenticate") > failedBefore })
	r.srv.Start()
	back := time.Now()
	res := <-done
	if res.err != nil || res.code != 0 {
		t.Fatalf("login held over the outage: code %d, %v", res.code, res.err)
	}
	t.Logf("held login answered %v after the database was back", res.at.Sub(back))
	if lag := res.at.Sub(back); lag > 2*time.Second {
		t.Errorf("held login answered %v after the database was back", lag)
	}
}

// TestReportsDroppedDuringOutage: the disconnect of a member whose report
// PostgreSQL could not take, and the login of one whose report failed,
// are in the store soon after it can take them again.
func TestReportsDroppedDuringOutage(t *testing.T) {
	r := newOutageRig(t, 300*time.Millisecond, false)
	leaver, stayer, late := r.client(t), r.client(t), r.client(t)
	var socks []*hubtest.Raw
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	login := func(c store.Client) *hubtest.Raw {
		ws, code, err := loginReply(r.ws, c, 10*time.Second)
		if err != nil || code != 0 {
			t.Fatalf("login: code %d, %v", code, err)
		}
		socks = append(socks, ws)
		return ws
	}
	leaving := login(leaver)
	login(stayer)
	waitFor(t, "both logins recorded", 5*time.Second, func() bool {
		return connected(t, r.st, leaver.ID) && connected(t, r.st, stayer.ID)
	})

	r.srv.Stop("fast")
	leaving.Close() // its disconnect report fails
	waitFor(t, "the leaver's disconnect report failing", 5*time.Second, func() bool {
		return r.gw.failures("verto_client_disconnect") > 0
	})
	r.srv.Start()
	waitFor(t, "the leaver's dropped disconnect applied after the database returned", 5*time.Second, func() bool {
		return !connected(t, r.st, leaver.ID)
	})
	if !connected(t, r.st, stayer.ID) {
		t.Error("the member who stayed is no longer connected")
	}

	// A login whose lookup worked but whose report was not taken.
	r.gw.dropReports.Store(true)
	dropped := r.gw.failures("verto_client_login")
	login(late)
	waitFor(t, "the late member's login report dropped", 5*time.Second, func() bool {
		return r.gw.failures("verto_client_login") > dropped
	})
	if connected(t, r.st, late.ID) {
		t.Fatal("the report was taken; the test dropped none")
	}
	r.gw.dropReports.Store(false)
	waitFor(t, "the late member's dropped login applied", 5*time.Second, func() bool {
		return connected(t, r.st, late.ID)
	})
}

// backoff is the browser's (webclient/static/verto.js).
func backoff(attempt int, r float64) time.Duration {
	if attempt <= 0 {
		return time.Duration(r*250) * time.Millisecond
	}
	ms := min(30000, float64(min(5000*attempt, 30000))*(0.8+0.4*r))
	return time.Duration(ms) * time.Millisecond
}

// browser logs in as the browser page does after its socket dropped
// (verto.js: lost, connect, login): a backoff, then a new socket and a
// login; -32001 means "login failed" and the long backoff, any other
// failure the next backoff. It returns when logged in, or ctx ends.
func browser(ctx context.Context, wsURL string, c store.Client, rnd *rand.Rand) (time.Time, error) {
	attempt, failed := 0, false
	for {
		a := attempt
		if failed {
			a = 6
		}
		attempt++
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(backoff(a, rnd.Float64())):
		}
		ws, code, err := loginReply(wsURL, c, 10*time.Second)
		if ws != nil {
			ws.Close()
		}
		if err == nil && code == 0 {
			return time.Now(), nil
		}
		failed = err == nil && code == verto.CodeAuthFailed
	}
}

// TestOutageRecoveryFigures measures how long after PostgreSQL returns
// from an outage of CHANNELS_OUTAGE_SECONDS (default 15) browser-like
// clients, whose sockets dropped as it stopped, are logged in again:
// "before" is the hub that took a failure for "not found" (-32001),
// "after" the hub of outage.go. Set CHANNELS_FIGURES=1 to run it.
func TestOutageRecoveryFigures(t *testing.T) {
	if os.Getenv("CHANNELS_FIGURES") == "" {
		t.Skip("figures: set CHANNELS_FIGURES=1")
	}
	outage := 15 * time.Second
	if s := os.Getenv("CHANNELS_OUTAGE_SECONDS"); s != "" {
		d, err := time.ParseDuration(s + "s")
		if err != nil {
			t.Fatal(err)
		}
		outage = d
	}
	const browsers = 10
	for _, mode := range []struct {
		name string
		hide bool
	}{{"before", true}, {"after", false}} {
		t.Run(mode.name, func(t *testing.T) {
			r := newOutageRig(t, 0, mode.hide)
			clients := make([]store.Client, browsers)
			for i := range clients {
				clients[i] = r.client(t)
			}
			r.srv.Stop("fast")
			ctx, cancel := context.WithTimeout(context.Background(), outage+2*time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			at := make([]time.Time, browsers)
			errs := make([]error, browsers)
			for i, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					at[i], errs[i] = browser(ctx, r.ws, c, rand.New(rand.NewPCG(uint64(i), 7)))
				}()
			}
			time.Sleep(outage)
			r.srv.Start()
			back := time.Now()
			wg.Wait()
			var lags []time.Duration
			for i := range at {
				if errs[i] != nil {
					t.Fatalf("browser %d: %v", i, errors.Join(errs[i]))
				}
				lags = append(lags, max(0, at[i].Sub(back)))
			}
			slices.Sort(lags)
			t.Logf("%s: %d browsers, outage %v: logged in again %v (min) / %v (median) / %v (max) after the database returned",
				mode.name, browsers, outage, lags[0].Round(10*time.Millisecond), lags[len(lags)/2].Round(10*time.Millisecond),
				lags[len(lags)-1].Round(10*time.Millisecond))
		})
	}
}

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"channels/internal/cli"
	"channels/internal/config"
	"channels/internal/lockedbuf"
	"channels/internal/store"
	"channels/internal/turn"
)

// turnserverPath finds coturn's turnserver, or skips (fails under CI)
// without it.
func turnserverPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHANNELS_TURNSERVER"), "/usr/bin/turnserver"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("turnserver not found: install Debian's coturn (apt-get install -y coturn)")
	}
	t.Skip("turnserver not found; install Debian's coturn to run the TURN test")
	return ""
}

// coturn is one turnserver on loopback taking time-limited credentials.
type coturn struct {
	secret string
	url    string // turn:127.0.0.1:port?transport=udp
	// relayMin and relayMax bound the relay ports it allocates.
	relayMin, relayMax int
	log                *syncBuffer
}

// syncBuffer collects output written while the test reads it.
type syncBuffer = lockedbuf.Buffer

// startCoturn runs turnserver on loopback ports free at the time, with a
// random secret, no configuration file, database, CLI, TLS or DTLS, and
// loopback peers allowed (both browsers are on this machine).
func startCoturn(t *testing.T) *coturn {
	t.Helper()
	exe := turnserverPath(t)
	secret := randomHex(t, 24)
	listen := freePorts(t, 2, true) // coturn may also take port+1 (RFC 5780)
	relay := freePorts(t, 32, false)
	dir := t.TempDir()
	c := &coturn{
		secret:   secret,
		url:      fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", listen),
		relayMin: relay,
		relayMax: relay + 31,
		log:      &syncBuffer{},
	}
	cmd := exec.Command(exe, "-n",
		"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
		"--listening-port="+strconv.Itoa(listen),
		"--min-port="+strconv.Itoa(c.relayMin), "--max-port="+strconv.Itoa(c.relayMax),
		"--use-auth-secret", "--static-auth-secret="+secret, "--realm=channels.test",
		"--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint",
		"--userdb="+filepath.Join(dir, "turndb"), "--pidfile="+filepath.Join(dir, "turnserver.pid"),
		"--log-file=stdout", "--verbose")
	cmd.Stdout, cmd.Stderr = c.log, c.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start turnserver: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("turnserver log:\n%s", c.log.String())
		}
	})
	// Ready when its TCP listener on the same port answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(listen)), time.Second)
		if err == nil {
			conn.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("turnserver exited at start:\n%s", c.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("turnserver not listening on %d after 10 s:\n%s", listen, c.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freePorts returns the first of n consecutive loopback ports that are
// free for UDP (and TCP, when tcp is set) at the time.
func freePorts(t testing.TB, n int, tcp bool) int {
	t.Helper()
	for range 100 {
		r, err := rand.Int(rand.Reader, big.NewInt(20000))
		if err != nil {
			t.Fatal(err)
		}
		base := 30000 + int(r.Int64())
		var held []interface{ Close() error }
		ok := true
		for p := base; p < base+n && ok; p++ {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
			u, err := net.ListenPacket("udp", addr)
			if err != nil {
				ok = false
				break
			}
			held = append(held, u)
			if tcp {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					ok = false
					break
				}
				held = append(held, l)
			}
		}
		for _, h := range held {
			h.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// startConfiguredApp serves Channels, assembled as serve does, with the
// default configuration changed by edit; it returns the app for
// meetAndCall (only its address and store are set).
func startConfiguredApp(t *testing.T, edit func(*config.Config)) *app {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	cfg := config.Default()
	cfg.Listen = ts.Listener.Addr().String()
	cfg.BaseURL = "http://" + cfg.Listen
	cfg.DatabaseURL = filepath.Join(t.TempDir(), "channels.db")
	edit(&cfg)
	st, err := store.Open(t.Context(), cfg.DatabaseURL)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	handler, shutdown, err := cli.Assemble(t.Context(), cfg, st, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	ts.Config.Handler = handler
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			t.Errorf("app shutdown: %v", err)
		}
		ts.Close()
		st.Close()
	})
	return &app{t: t, addr: cfg.Listen, store: st}
}

// pcWatcher records, in pages of test browsers, every RTCPeerConnection
// the page makes with its configuration, its connection states, the
// types of the candidates it gathers and its ICE candidate errors.
const pcWatcher = `(() => {
  const seen = window.__e2ePCs = [];
  const Orig = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Orig {
    constructor(cfg, ...rest) {
      super(cfg, ...rest);
      const rec = { pc: this, cfg: cfg || {}, states: [], candidates: [], errors: [] };
      seen.push(rec);
      this.addEventListener('connectionstatechange', () => rec.states.push(this.connectionState));
      this.addEventListener('icecandidate', (e) => { if (e.candidate) rec.candidates.push(e.candidate.type); });
      this.addEventListener('icecandidateerror', (e) => rec.errors.push(e.errorCode + ' ' + e.errorText));
    }
  };
})()`

// watchPCs installs pcWatcher in b's pages.
func watchPCs(b *browser) {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pcWatcher}); err != nil {
		b.t.Fatalf("%s: add peer connection watcher: %v", b.name, err)
	}
}

// selectedPair describes the candidate pair the call's connection uses, as
// "local-type remote-type remote-address:port".
const selectedPair = `(async () => {
  const rec = window.__e2ePCs.at(-1);
  const stats = await rec.pc.getStats();
  let pair;
  stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
  if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  if (!pair) return 'no selected pair';
  const l = stats.get(pair.localCandidateId), r = stats.get(pair.remoteCandidateId);
  return l.candidateType + ' ' + r.candidateType + ' ' + (r.address || r.ip) + ':' + r.port;
})()`

// answerSteady holds once the ringing page has prepared its answer (its
// connection is stable) and its Accept button has stayed in place for
// half a second. The page shows the caller's video area when the answer
// is ready, which moves the button; a click before that can land on the
// video instead, for a person as for the test.
const answerSteady = `(() => {
  const rec = window.__e2ePCs.at(-1);
  const r = document.querySelector('#channel-app .accept')?.getBoundingClientRect();
  if (!rec || rec.pc.signalingState !== 'stable' || !r || !r.width) return false;
  const at = r.x + ',' + r.y, w = window.__e2eAccept || (window.__e2eAccept = { at: '', since: 0 });
  if (w.at !== at) { w.at = at; w.since = performance.now(); return false; }
  return performance.now() - w.since > 500;
})()`

// ringAndAccept opens the channel in both browsers, lets a call b and b
// accept once its page holds still, and returns their client ids.
func ringAndAccept(t *testing.T, srv *app, ch store.Channel, a, b *browser) (string, string) {
	t.Helper()
	openBoth(t, srv.url("/c/"+ch.ID), a, b)
	aID, bID := clientID(a), clientID(b)
	a.mustWait(connReady, 10*time.Second)
	b.mustWait(connReady, 10*time.Second)
	a.mustWait(sees(bID), 5*time.Second)
	b.mustWait(sees(aID), 5*time.Second)
	a.click(callButton(bID))
	b.mustWait(ringing, 5*time.Second)
	b.mustWait(answerSteady, 10*time.Second)
	b.click(`#channel-app .accept`)
	b.mustWait(`document.getElementById('channel-app')?.dataset.call !== 'ringing'`, 2*time.Second)
	return aID, bID
}

// TestTURNRelay: with -turn-secret, -turn-urls and -ice-relay-only, two
// Chromiums call each other through a real coturn (the only path they
// may use), with the time-limited credentials Channels minted; with a
// secret coturn does not know, or a credential past its expiry, no relay
// is allocated and the call never connects.
func TestTURNRelay(t *testing.T) {
	exe := chromiumPath(t)
	tc := startCoturn(t)
	withTURN := func(secret string) func(*config.Config) {
		return func(c *config.Config) {
			c.TURNSecret = secret
			c.TURNURLs = []string{tc.url}
			c.ICERelayOnly = true
		}
	}

	t.Run("relayed call", func(t *testing.T) {
		srv := startConfiguredApp(t, withTURN(tc.secret))
		room, err := srv.store.CreateChannel(t.Context(), "Across the internet", false, 0)
		if err != nil {
			t.Fatal(err)
		}
		alice, bob := newBrowser(t, exe, "alice"), newBrowser(t, exe, "bob")
		watchPCs(alice)
		watchPCs(bob)
		start := time.Now()
		aliceID, bobID := ringAndAccept(t, srv, room, alice, bob)
		alice.mustWait(inCall, 10*time.Second)
		bob.mustWait(inCall, 10*time.Second)
		t.Logf("pages opened to a relayed call: %v", time.Since(start))
		for _, b := range []*browser{alice, bob} {
			// The page's credentials are Channels' time-limited ones,
			// named after its client.
			cfg := mustEval[string](b, `JSON.stringify(JSON.parse(document.getElementById('channel-config').textContent))`)
			own := map[*browser]string{alice: aliceID, bob: bobID}[b]
			if !strings.Contains(cfg, `"iceTransportPolicy":"relay"`) || !strings.Contains(cfg, ":"+own+`"`) || !strings.Contains(cfg, `"iceUrl":"/c/`+room.ID+`/ice"`) {
				t.Errorf("%s: page config %s: want relay only, a TURN username ending in the client id, the renewal URL", b.name, cfg)
			}
			if p := mustEval[string](b, `window.__e2ePCs.at(-1).pc.getConfiguration().iceTransportPolicy`); p != "relay" {
				t.Errorf("%s: the call's connection has iceTransportPolicy %q, want relay", b.name, p)
			}
			// Video really plays, and flows through the relay.
			mustPlay(b)
			pair := mustAwait[string](b, selectedPair)
			f := strings.Fields(pair)
			if len(f) != 3 || f[0] != "relay" || f[1] != "relay" {
				t.Fatalf("%s: selected candidate pair %q, want relay on both ends", b.name, pair)
			}
			host, port, _ := net.SplitHostPort(f[2])
			if p, _ := strconv.Atoi(port); host != "127.0.0.1" || p < tc.relayMin || p > tc.relayMax {
				t.Errorf("%s: remote candidate %s is not one of coturn's relay ports %d…%d", b.name, f[2], tc.relayMin, tc.relayMax)
			}
			if types := mustEval[string](b, `window.__e2ePCs.at(-1).candidates.join(' ')`); strings.Contains(types, "host") || strings.Contains(types, "srflx") {
				t.Errorf("%s: gathered candidates %q: a relay-only page must reveal no address", b.name, types)
			}
			t.Logf("%s: selected pair %s", b.name, pair)
		}
		first := mustEval[float64](bob, rxBytes)
		bob.mustWait(rxBytes+` > `+ftoa(first+20000), 10*time.Second)
		// coturn saw both clients' allocations under their own names.
		for _, id := range []string{aliceID, bobID} {
			if !strings.Contains(tc.log.String(), ":"+id) {
				t.Errorf("coturn's log never names client %s", id)
			}
		}
		for _, b := range []*browser{alice, bob} {
			if p := b.problems(); p != "" {
				t.Errorf("%s: page problems: %s", b.name, p)
			}
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		srv := startConfiguredApp(t, withTURN(randomHex(t, 24)))
		room, err := srv.store.CreateChannel(t.Context(), "Wrong secret", false, 0)
		if err != nil {
			t.Fatal(err)
		}
		carol, dave := newBrowser(t, exe, "carol"), newBrowser(t, exe, "dave")
		watchPCs(carol)
		watchPCs(dave)
		ringAndAccept(t, srv, room, carol, dave)
		// Both connections exist and have asked coturn, which refused.
		for _, b := range []*browser{carol, dave} {
			b.mustWait(`(window.__e2ePCs.at(-1)?.errors || []).some((e) => e.startsWith('401'))`, 10*time.Second)
		}
		// Give ICE time it would need on loopback many times over.
		time.Sleep(5 * time.Second)
		for _, b := range []*browser{carol, dave} {
			rec := mustEval[string](b, `JSON.stringify({states: window.__e2ePCs.at(-1).states, candidates: window.__e2ePCs.at(-1).candidates, call: document.getElementById('channel-app').dataset.call})`)
			if strings.Contains(rec, `"connected"`) || strings.Contains(rec, `"relay"`) || strings.Contains(rec, `"in call"`) {
				t.Errorf("%s: connected with credentials coturn cannot know: %s", b.name, rec)
			}
		}
	})

	t.Run("expired credential", func(t *testing.T) {
		// A page of any site will do; the credentials are made here, by
		// the same code as Channels', against coturn's real secret.
		srv := startConfiguredApp(t, withTURN(tc.secret))
		b := newBrowser(t, exe, "erin")
		if err := b.navigate(srv.url("/")); err != nil {
			t.Fatal(err)
		}
		mint := func(now time.Time, ttl time.Duration) turn.Credentials {
			m, err := turn.New(turn.Options{Secret: tc.secret, URLs: []string{tc.url}, TTL: ttl, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			c, err := m.Mint("e2e-" + randomHex(t, 4))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		gather := func(c turn.Credentials) string {
			return mustAwait[string](b, `(async () => {
  const pc = new RTCPeerConnection({ iceTransportPolicy: 'relay', iceServers: [{ urls: `+jsString(c.URLs[0])+`, username: `+jsString(c.Username)+`, credential: `+jsString(c.Password)+` }] });
  const types = [], errors = [];
  pc.onicecandidate = (e) => { if (e.candidate) types.push(e.candidate.type); };
  pc.onicecandidateerror = (e) => errors.push(String(e.errorCode));
  pc.createDataChannel('probe');
  await pc.setLocalDescription(await pc.createOffer());
  const t0 = Date.now();
  while (pc.iceGatheringState !== 'complete' && Date.now() - t0 < 8000) await new Promise((ok) => setTimeout(ok, 50));
  pc.close();
  return 'relay=' + types.filter((t) => t === 'relay').length + ' errors=' + errors.join(',');
})()`)
		}
		// The control: a fresh credential gets a relay from the same
		// page, so the refusal below is coturn's, not the set-up's.
		if got := gather(mint(time.Now(), time.Hour)); !strings.HasPrefix(got, "relay=1") {
			t.Fatalf("fresh credential: %s, want one relay candidate", got)
		}
		// Minted two hours ago for an hour: expired an hour ago.
		expired := mint(time.Now().Add(-2*time.Hour), time.Hour)
		if !expired.Expires.Before(time.Now()) {
			t.Fatalf("credential expires %v, not in the past", expired.Expires)
		}
		got := gather(expired)
		if !strings.HasPrefix(got, "relay=0") || !strings.Contains(got, "401") {
			t.Errorf("expired credential: %s, want no relay candidate and a 401 from coturn", got)
		}
		t.Logf("expired credential: %s", got)
	})
}

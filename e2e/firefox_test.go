package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"channels/e2e/bidi"
)

// firefoxPath finds Debian's firefox-esr, or skips (fails under CI).
func firefoxPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHANNELS_FIREFOX"), "firefox-esr", "firefox"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("firefox not found: install Debian's firefox-esr (apt-get install -y firefox-esr)")
	}
	t.Skip("firefox not found; install Debian's firefox-esr to run the Firefox end-to-end test")
	return ""
}

// firefoxUserJS makes a headless Firefox a test browser: a fake camera
// and microphone granted without asking, media allowed to start without a
// gesture (the clicks are real input anyway), and no background traffic.
const firefoxUserJS = `user_pref("media.navigator.streams.fake", true);
user_pref("media.navigator.permission.disabled", true);
user_pref("media.autoplay.default", 0);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.disabledForTesting", true);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("messaging-system.rsexperimentloader.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("browser.newtabpage.enabled", false);
user_pref("browser.startup.page", 0);
`

// firefox is one headless Firefox with its own profile, driven over
// WebDriver BiDi, with one tab.
type firefox struct {
	t      testing.TB
	name   string
	bidi   *bidi.Client
	tab    string // browsing context id
	ctx    context.Context
	cancel context.CancelFunc
}

// listening is what Firefox prints once its BiDi endpoint is up.
var listening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// newFirefox starts Firefox headless with a fresh profile and opens a BiDi
// session on it; t.Cleanup stops it.
func newFirefox(t testing.TB, exe, name string) *firefox {
	t.Helper()
	profile := t.TempDir()
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(firefoxUserJS), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			cancel()
			ctx, cancel = context.WithDeadline(context.Background(), dl.Add(-5*time.Second))
		}
	}
	// Port 0: Firefox picks a free port and prints it, so no race with
	// other tests for a port chosen here.
	cmd := exec.CommandContext(ctx, exe, "--headless", "--no-remote", "--profile", profile,
		"--remote-debugging-port=0", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "HOME="+profile)
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: start firefox: %v", name, err)
	}
	stopped := make(chan struct{})
	t.Cleanup(func() {
		cancel() // kills Firefox
		<-stopped
	})
	urls := make(chan string, 1)
	go func() {
		defer close(stopped)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() { // drain to the end, so Firefox never blocks on a full pipe
			if m := listening.FindStringSubmatch(sc.Text()); m != nil && !sent {
				urls <- m[1]
				sent = true
			}
		}
		_ = cmd.Wait()
	}()
	var url string
	select {
	case url = <-urls:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: firefox did not open its BiDi endpoint in 30 s", name)
	case <-stopped:
		t.Fatalf("%s: firefox exited before opening its BiDi endpoint", name)
	}
	dialCtx, dialCancel := context.WithTimeout(ctx, 10*time.Second)
	defer dialCancel()
	c, err := bidi.Dial(dialCtx, url+"/session")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { _ = c.Close() }) // runs before Firefox is killed
	f := &firefox{t: t, name: name, bidi: c, ctx: ctx, cancel: cancel}
	var sess struct {
		Capabilities struct {
			BrowserName, BrowserVersion string
		}
	}
	// The endpoint listens before the first window is ready, and session.new
	// waits for it: on a busy machine (a fresh profile) that took over 10 s.
	began := time.Now()
	f.call(45*time.Second, "session.new", map[string]any{"capabilities": map[string]any{}}, &sess)
	t.Logf("%s: %s %s over WebDriver BiDi (session.new took %v)", name, sess.Capabilities.BrowserName, sess.Capabilities.BrowserVersion, time.Since(began))
	var tree struct {
		Contexts []struct{ Context string }
	}
	f.call(5*time.Second, "browsingContext.getTree", map[string]any{"maxDepth": 0}, &tree)
	if len(tree.Contexts) == 0 {
		t.Fatalf("%s: no browsing context", name)
	}
	f.tab = tree.Contexts[0].Context
	f.call(5*time.Second, "browsingContext.setViewport", map[string]any{
		"context": f.tab, "viewport": map[string]int{"width": 1280, "height": 800}}, nil)
	// The same watcher as in Chromium: page errors, rejections and CSP
	// violations, recorded for problems().
	f.call(5*time.Second, "script.addPreloadScript", map[string]any{
		"functionDeclaration": "() => { " + watcher + "; " + pcRecorder + " }"}, nil)
	return f
}

// pcRecorder keeps the page's peer connections in window.__e2ePCs, so the
// test can report which ICE candidates Firefox chose.
const pcRecorder = `(() => {
  const PC = window.RTCPeerConnection, pcs = window.__e2ePCs = [];
  window.RTCPeerConnection = function (...a) {
    const pc = new PC(...a), t0 = performance.now(), log = pc.__e2eLog = [];
    pc.addEventListener('connectionstatechange', () => log.push(pc.connectionState + '@' + Math.round(performance.now() - t0) + 'ms'));
    pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = PC.prototype;
})()`

// iceJS describes the selected candidate pair of the latest peer connection.
const iceJS = `(async () => {
  const pc = (window.__e2ePCs || []).at(-1);
  if (!pc) return 'no peer connection';
  const st = await pc.getStats(), by = new Map([...st.values()].map((r) => [r.id, r]));
  const pair = [...st.values()].find((r) => r.type === 'candidate-pair' && (r.selected || r.nominated) && r.state === 'succeeded');
  if (!pair) return 'no selected candidate pair';
  const c = (id) => { const x = by.get(id) || {}; return x.candidateType + ' ' + (x.address || x.ipAddress) + ':' + (x.port || x.portNumber) + '/' + x.protocol; };
  const codecs = [...st.values()].filter((r) => r.type === 'inbound-rtp' || r.type === 'outbound-rtp')
    .map((r) => r.type.slice(0, r.type.indexOf('-')) + ' ' + (by.get(r.codecId) || {}).mimeType).sort().join(', ');
  return 'firefox connection ' + pc.__e2eLog.join(' ') + ', codecs ' + codecs + ', ICE pair local ' + c(pair.localCandidateId) + ' remote ' + c(pair.remoteCandidateId);
})()`

// call sends a BiDi command with a deadline; it fails the test on error.
func (f *firefox) call(d time.Duration, method string, params, out any) {
	f.t.Helper()
	if err := f.try(d, method, params, out); err != nil {
		f.t.Fatal(err)
	}
}

func (f *firefox) try(d time.Duration, method string, params, out any) error {
	ctx, cancel := context.WithTimeout(f.ctx, d)
	defer cancel()
	if err := f.bidi.Call(ctx, method, params, out); err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	return nil
}

// navigate opens a URL and waits until it has loaded.
func (f *firefox) navigate(url string) error {
	return f.try(20*time.Second, "browsingContext.navigate", map[string]any{
		"context": f.tab, "url": url, "wait": "complete"}, nil)
}

// ffEval evaluates a JavaScript expression (awaited when it is a promise)
// in f's page, passing the value as JSON.
func ffEval[T any](f *firefox, expr string) (T, error) {
	var v T
	var r struct {
		Type   string
		Result struct {
			Type  string
			Value json.RawMessage
		}
		ExceptionDetails struct{ Text string }
	}
	err := f.try(10*time.Second, "script.evaluate", map[string]any{
		"expression":   `(async () => JSON.stringify(await (` + expr + `)))()`,
		"target":       map[string]string{"context": f.tab},
		"awaitPromise": true,
	}, &r)
	if err != nil {
		return v, err
	}
	if r.Type == "exception" {
		return v, fmt.Errorf("%s: eval %s: %s", f.name, expr, r.ExceptionDetails.Text)
	}
	var s string
	if r.Result.Type != "string" || json.Unmarshal(r.Result.Value, &s) != nil {
		return v, fmt.Errorf("%s: eval %s: got a %s, not JSON", f.name, expr, r.Result.Type)
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return v, fmt.Errorf("%s: eval %s: %w", f.name, expr, err)
	}
	return v, nil
}

// ffMustEval is ffEval that fails the test on error.
func ffMustEval[T any](f *firefox, expr string) T {
	f.t.Helper()
	v, err := ffEval[T](f, expr)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// mustWait polls a boolean JavaScript expression until it holds.
func (f *firefox) mustWait(expr string, d time.Duration) time.Duration {
	f.t.Helper()
	start := time.Now()
	for {
		ok, err := ffEval[bool](f, "!!("+expr+")")
		if err != nil {
			f.t.Fatal(err)
		}
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > d {
			state, _ := ffEval[string](f, `JSON.stringify(Object.assign({}, document.getElementById('channel-app')?.dataset, {say: document.querySelector('.say')?.textContent, peers: document.querySelectorAll('[data-peer]').length}))`)
			f.t.Fatalf("%s: still not %s after %v (page state %s)", f.name, expr, d, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// click clicks the element a CSS selector finds with real pointer input at
// its centre (as browser.click does in Chromium), which gives the page
// user activation; it fails when something else covers that point.
func (f *firefox) click(sel string) {
	f.t.Helper()
	f.call(5*time.Second, "input.performActions", pointerClick(f.tab, ffMustEval[[]float64](f, clickPoint(sel))), nil)
}

// pointerClick is WebDriver BiDi's input.performActions for one click of
// a mouse at pt (viewport coordinates) in the browsing context tab.
func pointerClick(tab string, pt []float64) map[string]any {
	x, y := int(math.Round(pt[0])), int(math.Round(pt[1]))
	return map[string]any{
		"context": tab,
		"actions": []any{map[string]any{
			"type": "pointer", "id": "mouse", "parameters": map[string]string{"pointerType": "mouse"},
			"actions": []any{
				map[string]any{"type": "pointerMove", "x": x, "y": y, "origin": "viewport"},
				map[string]any{"type": "pointerDown", "button": 0},
				map[string]any{"type": "pointerUp", "button": 0},
			},
		}},
	}
}

// problems returns what the watcher collected, or "".
func (f *firefox) problems() string {
	f.t.Helper()
	return ffMustEval[string](f, `(window.__e2eProblems || []).join('; ')`)
}

// ffMustPlay is mustPlay for Firefox: the peer's video has frames, is not
// paused, and its clock advances.
func ffMustPlay(f *firefox) {
	f.t.Helper()
	const v = `document.querySelector('#channel-app video.remote')`
	f.mustWait(v+`.videoWidth > 0 && !`+v+`.paused`, 10*time.Second)
	at := ffMustEval[float64](f, v+`.currentTime`)
	f.mustWait(v+`.currentTime > `+ftoa(at+0.3)+` && !`+v+`.paused`, 5*time.Second)
}

// TestFirefoxCall: a Firefox and a Chromium in one channel list each other
// and call both ways (Firefox calls, then Chromium calls), each side's
// remote video playing, clicks given as real pointer input.
func TestFirefoxCall(t *testing.T) {
	chromium := chromiumPath(t)
	fx := firefoxPath(t)
	srv := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
	room, err := srv.store.CreateChannel(t.Context(), "Firefox meets Chromium", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	fox := newFirefox(t, fx, "firefox")
	foxUp := time.Since(start)
	chrome := newBrowser(t, chromium, "chromium")
	chrome.mustEmulateDesktop()
	t.Logf("browsers started: firefox in %v, chromium in %v", foxUp, time.Since(start)-foxUp)
	start = time.Now()

	url := srv.url("/c/" + room.ID)
	errs := make(chan error, 2)
	go func() { errs <- fox.navigate(url) }()
	go func() { errs <- chrome.navigate(url) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	foxID := ffMustEval[string](fox, `JSON.parse(document.getElementById('channel-config').textContent).clientId`)
	chromeID := clientID(chrome)
	fox.mustWait(connReady, 10*time.Second)
	chrome.mustWait(connReady, 10*time.Second)
	fox.mustWait(sees(chromeID), 5*time.Second)
	chrome.mustWait(sees(foxID), 5*time.Second)
	t.Logf("listed each other %v after opening the pages", time.Since(start))

	const remote = `document.querySelector('#channel-app video.remote')`
	bothPlay := func(what string) {
		t.Helper()
		began := time.Now()
		ffMustPlay(fox)
		foxPlayed := time.Since(began)
		mustPlay(chrome)
		t.Logf("%s: firefox's remote video played after %v, chromium's after %v; %s", what, foxPlayed, time.Since(began), ffMustEval[string](fox, iceJS))
		for _, s := range []struct {
			name string
			rx   func() float64
			wait func(string)
		}{
			{"firefox", func() float64 { return ffMustEval[float64](fox, rxBytes) }, func(e string) { fox.mustWait(e, 5*time.Second) }},
			{"chromium", func() float64 { return mustEval[float64](chrome, rxBytes) }, func(e string) { chrome.mustWait(e, 5*time.Second) }},
		} {
			s.wait(rxBytes + ` > 0`)
			s.wait(rxBytes + ` > ` + ftoa(s.rx()))
		}
		fw := ffMustEval[float64](fox, remote+`.videoWidth`)
		cw := mustEval[float64](chrome, remote+`.videoWidth`)
		t.Logf("%s: both remote videos play (firefox sees %vpx wide, chromium %vpx) %v after both were in the call", what, fw, cw, time.Since(began))
	}

	// A call each way: the caller clicks Call, the callee Accept, both
	// play each other's video, the caller hangs up.
	type side struct {
		name string
		id   string
		page interface {
			click(sel string)
			mustWait(expr string, d time.Duration) time.Duration
		}
	}
	foxSide, chromeSide := side{"firefox", foxID, fox}, side{"chromium", chromeID, chrome}
	for _, c := range [][2]side{{foxSide, chromeSide}, {chromeSide, foxSide}} {
		caller, callee := c[0], c[1]
		caller.page.mustWait(`document.querySelector(`+jsString(callButton(callee.id))+`).getAttribute('aria-disabled') === 'false'`, 5*time.Second)
		callee.page.mustWait(`document.querySelector(`+jsString(callButton(caller.id))+`).getAttribute('aria-disabled') === 'false'`, 5*time.Second)
		began := time.Now()
		caller.page.click(callButton(callee.id))
		callee.page.mustWait(ringing, 5*time.Second)
		callee.page.click(`#channel-app .accept`)
		caller.page.mustWait(inCall, 20*time.Second) // generous: a loaded machine, three browsers
		callee.page.mustWait(inCall, 20*time.Second)
		what := caller.name + " → " + callee.name
		t.Logf("%s: in call %v after clicking Call", what, time.Since(began))
		bothPlay(what)
		caller.page.click(`#channel-app .hangup`)
		caller.page.mustWait(idle, 5*time.Second)
		callee.page.mustWait(idle, 5*time.Second)
	}

	if p := fox.problems(); p != "" {
		t.Errorf("firefox: page problems: %s", p)
	}
	if p := chrome.problems(); p != "" {
		t.Errorf("chromium: page problems: %s", p)
	}
	t.Logf("whole test %v", time.Since(start))
}

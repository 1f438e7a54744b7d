package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds the browser, or skips (fails under CI) without one.
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHANNELS_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found: install Debian's chromium (apt-get install -y chromium)")
	}
	t.Skip("chromium not found; install Debian's chromium to run the end-to-end tests")
	return ""
}

// browser is one headless Chromium with its own profile (cookies), and one tab.
type browser struct {
	t    testing.TB
	name string
	ctx  context.Context
	// close stops the browser (or the tab); calling it again does nothing.
	close func()
}

// newBrowser starts a fresh Chromium with fake media devices whose every
// camera and microphone request is granted.
func newBrowser(t testing.TB, exe, name string) *browser {
	t.Helper()
	return launchBrowser(t, exe, name,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true))
}

// launchBrowser starts a fresh headless Chromium with the flags this
// machine needs and extra, and the page watcher installed.
func launchBrowser(t testing.TB, exe, name string, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1024, 700),
	}, extra...)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	b := &browser{t: t, name: name, ctx: ctx, close: func() {
		cancelC()
		cancelA()
	}}
	t.Cleanup(b.close)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: start chromium: %v", name, err)
	}
	// Record, on the test's side, what the page would only log: uncaught
	// errors, rejected promises and Content-Security-Policy violations.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watcher}); err != nil {
		t.Fatalf("%s: add watcher: %v", name, err)
	}
	return b
}

// run runs actions with a deadline.
func (b *browser) run(d time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		return fmt.Errorf("%s: %w", b.name, err)
	}
	return nil
}

// must is run that fails the test on error.
func (b *browser) must(d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := b.run(d, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression in b's page.
func eval[T any](b *browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		return v, fmt.Errorf("%s: eval %s: %w", b.name, expr, err)
	}
	return v, nil
}

// mustEval is eval that fails the test on error.
func mustEval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := eval[T](b, expr)
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

// mustAwait evaluates an expression that yields a promise and returns what
// the promise resolves to; it fails the test on error.
func mustAwait[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: await %s: %v", b.name, expr, err)
	}
	return v
}

// clickPoint is a script that scrolls the element sel finds into view and
// returns the page coordinates of its centre, failing when the element is
// missing, hidden or covered there: where a person's click would land.
func clickPoint(sel string) string {
	return `(() => {
  const el = document.querySelector(` + jsString(sel) + `);
  if (!el) throw new Error('no element ' + ` + jsString(sel) + `);
  el.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  const r = el.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
  const at = document.elementFromPoint(x, y);
  if (!at || !el.contains(at)) throw new Error(` + jsString(sel) + ` + ' is hidden or covered by ' + (at ? at.outerHTML.slice(0, 80) : 'nothing'));
  return [x, y];
})()`
}

// click clicks the element a CSS selector finds as a person would: with
// real mouse input at its centre (scrolled into view), which gives the page
// user activation. It fails when something else covers that point.
func (b *browser) click(sel string) {
	b.t.Helper()
	pt := mustEval[[]float64](b, clickPoint(sel))
	b.must(5*time.Second, chromedp.MouseClickXY(pt[0], pt[1]))
}

// scriptClick clicks an element from a script (element.click()), which,
// unlike click, gives the page no user activation: as when a page acts
// without a gesture.
func (b *browser) scriptClick(sel string) {
	b.t.Helper()
	mustEval[bool](b, `(() => { const el = document.querySelector(`+jsString(sel)+`); if (!el) throw new Error('no element '+`+jsString(sel)+`); el.click(); return true })()`)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitFor polls a boolean JavaScript expression until it holds; it returns
// how long that took.
func (b *browser) waitFor(expr string, d time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		ok, err := eval[bool](b, "!!("+expr+")")
		if err != nil {
			return 0, err
		}
		if ok {
			return time.Since(start), nil
		}
		if time.Since(start) > d {
			return 0, fmt.Errorf("%s: still not %s after %v", b.name, expr, d)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// mustWait is waitFor that fails the test.
func (b *browser) mustWait(expr string, d time.Duration) time.Duration {
	b.t.Helper()
	took, err := b.waitFor(expr, d)
	if err != nil {
		state, _ := eval[string](b, `JSON.stringify(Object.assign({}, document.getElementById('channel-app')?.dataset, {say: document.querySelector('.say')?.textContent, peers: document.querySelectorAll('[data-peer]').length}))`)
		b.t.Fatalf("%v (page state %s)", err, state)
	}
	return took
}

// screenshot saves a PNG of the page into the artifacts directory.
func (b *browser) screenshot(dir, file string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("%s: screenshot: %v", b.name, err)
	}
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// artifactsDir is CHANNELS_E2E_ARTIFACTS, or a temporary directory.
func artifactsDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("CHANNELS_E2E_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, err := os.MkdirTemp("", "channels-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// navigate opens a URL in the tab and waits for it to load.
func (b *browser) navigate(url string) error {
	return b.run(20*time.Second, chromedp.Navigate(url))
}

// mustEmulateDesktop makes the viewport that of a laptop.
func (b *browser) mustEmulateDesktop() {
	b.t.Helper()
	b.must(5*time.Second, chromedp.EmulateViewport(1280, 800))
}

// mustEmulatePhone makes the viewport that of a phone held upright.
func (b *browser) mustEmulatePhone() {
	b.t.Helper()
	b.must(5*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch))
}

// watcher collects page problems into window.__e2eProblems, and the
// sessid of every Verto login the page sends into window.__e2eSessids
// (test browsers only).
const watcher = `(() => {
  const p = window.__e2eProblems = [];
  const s = window.__e2eSessids = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (d) {
    try { const m = JSON.parse(d); if (m.method === 'login') s.push(m.params.sessid); } catch {}
    return send.call(this, d);
  };
  addEventListener('error', (e) => p.push('error: ' + e.message));
  addEventListener('unhandledrejection', (e) => p.push('rejection: ' + (e.reason && e.reason.message || e.reason)));
  document.addEventListener('securitypolicyviolation', (e) => p.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
})()`

// loginSessid is the sessid of the page's latest Verto login, or "".
func (b *browser) loginSessid() string {
	b.t.Helper()
	return mustEval[string](b, `String((window.__e2eSessids || []).at(-1) || '')`)
}

// problems returns what the watcher collected, or "".
func (b *browser) problems() string {
	b.t.Helper()
	return mustEval[string](b, `(window.__e2eProblems || []).join('; ')`)
}

// ftoa formats a number for a JavaScript expression.
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// newTab opens another tab in b's browser (same profile, same cookies).
func (b *browser) newTab(name string) *browser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		b.t.Fatalf("%s: new tab: %v", name, err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watcher}); err != nil {
		cancel()
		b.t.Fatalf("%s: add watcher: %v", name, err)
	}
	b.t.Cleanup(cancel)
	return &browser{t: b.t, name: name, ctx: ctx, close: cancel}
}

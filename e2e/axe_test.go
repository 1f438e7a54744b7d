package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// axeVersion is the axe-core release the accessibility test runs; scripts/test
// installs exactly this one.
const axeVersion = "4.14.1"

// axeSource reads axe.min.js from CHANNELS_AXE, or from where scripts/test
// caches it. Without it the test skips, and fails under CI.
func axeSource(t testing.TB) string {
	t.Helper()
	p := os.Getenv("CHANNELS_AXE")
	if p == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			p = filepath.Join(dir, "channels-test", "axe-core-"+axeVersion, "node_modules", "axe-core", "axe.min.js")
		}
	}
	src, err := os.ReadFile(p)
	if err == nil {
		return string(src)
	}
	msg := fmt.Sprintf("axe-core not found (%v): run scripts/test, or npm install --no-save --prefix DIR axe-core@%s and set CHANNELS_AXE=DIR/node_modules/axe-core/axe.min.js", err, axeVersion)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// axeNode is one element a rule found at fault.
type axeNode struct {
	Target  string `json:"target"`
	Summary string `json:"summary"`
}

// axeViolation is one failed axe rule on a page.
type axeViolation struct {
	ID     string    `json:"id"`
	Impact string    `json:"impact"`
	Help   string    `json:"help"`
	Nodes  []axeNode `json:"nodes"`
}

func (v axeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s", v.ID, v.Impact, v.Help)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n      %s: %s", n.Target, strings.ReplaceAll(n.Summary, "\n", " "))
	}
	return b.String()
}

// axeRunJS runs every axe rule over the whole document and keeps only the
// violations, flattened to what a report needs.
const axeRunJS = `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
  id: v.id, impact: v.impact || '', help: v.help,
  nodes: v.nodes.map(n => ({target: n.target.flat(Infinity).join(' > '), summary: n.failureSummary || ''})),
})))`

// axeCheck checks b's current page in the light theme and in the dark one
// (which has colours of its own), and leaves it light.
func axeCheck(t *testing.T, b *browser, src, what string) {
	t.Helper()
	axeCheckScheme(t, b, src, what)
	axeDark(t, b, true)
	axeCheckScheme(t, b, src, what+", dark")
	axeDark(t, b, false)
}

// axeCheckScheme injects axe-core into b's current page (once per
// document), runs it, and fails the test on every serious or critical
// violation; it logs the rest.
func axeCheckScheme(t *testing.T, b *browser, src, what string) {
	t.Helper()
	if !mustEval[bool](b, `typeof window.axe === 'object'`) {
		// Runtime.evaluate, unlike a <script> tag, is not subject to the
		// page's Content-Security-Policy.
		if err := b.run(10*time.Second, chromedp.Evaluate[chromedp.Void](src)); err != nil {
			t.Fatalf("%s: inject axe-core: %v", what, err)
		}
	}
	start := time.Now()
	vs := mustAwait[[]axeViolation](b, axeRunJS)
	failed := 0
	for _, v := range vs {
		switch {
		case v.Impact == "serious" || v.Impact == "critical":
			failed++
			t.Errorf("%s: %v", what, v)
		default:
			t.Logf("%s (not failing, impact %q): %v", what, v.Impact, v)
		}
	}
	t.Logf("%s: axe-core %s: %d violations, %d serious or critical (%v)", what, axeVersion, len(vs), failed, time.Since(start).Round(time.Millisecond))
}

// axeDark switches b's prefers-color-scheme between dark and light.
func axeDark(t *testing.T, b *browser, dark bool) {
	t.Helper()
	scheme := "light"
	if dark {
		scheme = "dark"
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
		t.Fatalf("%s: emulate prefers-color-scheme %s: %v", b.name, scheme, err)
	}
}

// axeVisit opens a page and waits until it has loaded.
func axeVisit(t *testing.T, b *browser, url string) {
	t.Helper()
	if err := b.navigate(url); err != nil {
		t.Fatal(err)
	}
}

// axeSignIn signs b in through the sign-in form, with real key presses.
func axeSignIn(t *testing.T, b *browser, srv *app, name, pw string) {
	t.Helper()
	axeVisit(t, b, srv.url("/signin"))
	b.must(10*time.Second,
		chromedp.SendKeys(`input[name=name]`, name),
		chromedp.SendKeys(`input[name=password]`, pw),
		chromedp.Submit(`input[name=password]`),
	)
	// The page navigates away; evaluations may fail while it does.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, err := eval[bool](b, `location.pathname !== '/signin' && document.readyState === 'complete'`); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still on the sign-in page after submitting it", b.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAccessibility runs axe-core over every page, anonymous and signed
// in, at 1280×800, and over a channel page idle, calling and ringing at
// both 1280×800 and 390×844, each in the light and the dark theme: no
// serious or critical violation may remain.
func TestAccessibility(t *testing.T) {
	exe := chromiumPath(t)
	src := axeSource(t)
	start := time.Now()
	srv := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
	owner := srv.mustUser("olga", "correct horse")
	room, err := srv.store.CreateChannel(t.Context(), "Weekly review", true, owner.ID)
	if err != nil {
		t.Fatal(err)
	}

	anon := newBrowser(t, exe, "anonymous")
	olga := newBrowser(t, exe, "olga")
	anon.mustEmulateDesktop()
	olga.mustEmulateDesktop()

	for _, p := range []struct{ what, path string }{
		{"index, anonymous", "/"},
		{"sign-in form", "/signin"},
		{"not found (404)", "/no/such/page"},
		{"channels list, signed out (401)", "/channels"},
	} {
		axeVisit(t, anon, srv.url(p.path))
		axeCheck(t, anon, src, p.what)
	}

	// A failed sign-in shows its error (an alert, in --bad).
	axeVisit(t, anon, srv.url("/signin"))
	anon.must(10*time.Second,
		chromedp.SendKeys(`input[name=name]`, "olga"),
		chromedp.SendKeys(`input[name=password]`, "wrong"),
		chromedp.Submit(`input[name=password]`),
	)
	if _, err := anon.waitFor(`document.querySelector('[role=alert]') && document.readyState === 'complete'`, 10*time.Second); err != nil {
		// The page navigates while this polls; one more try once it has.
		anon.mustWait(`document.querySelector('[role=alert]')`, 5*time.Second)
	}
	axeCheck(t, anon, src, "sign-in form, wrong password")

	axeSignIn(t, olga, srv, "olga", "correct horse")
	for _, p := range []struct{ what, path string }{
		{"index, signed in", "/"},
		{"channels list", "/channels"},
		{"new channel form", "/channels/new"},
		{"edit channel form", "/c/" + room.ID + "/edit"},
		{"delete channel form", "/c/" + room.ID + "/delete"},
	} {
		axeVisit(t, olga, srv.url(p.path))
		axeCheck(t, olga, src, p.what)
	}

	// A channel with two people in it: olga on a laptop, the anonymous
	// visitor on a phone.
	anon.mustEmulatePhone()
	openBoth(t, srv.url("/c/"+room.ID), olga, anon)
	olgaID, anonID := clientID(olga), clientID(anon)
	olga.mustWait(connReady, 10*time.Second)
	anon.mustWait(connReady, 10*time.Second)
	olga.mustWait(sees(anonID), 5*time.Second)
	anon.mustWait(sees(olgaID), 5*time.Second)
	axeCheck(t, olga, src, "channel, idle, 1280×800")
	axeCheck(t, anon, src, "channel, idle, 390×844")

	olga.click(callButton(anonID))
	anon.mustWait(ringing, 5*time.Second)
	axeCheck(t, olga, src, "channel, calling, 1280×800")
	axeCheck(t, anon, src, "channel, ringing, 390×844")
	// The same states with the sizes swapped.
	olga.mustEmulatePhone()
	anon.mustEmulateDesktop()
	anon.mustWait(ringing, time.Second)
	axeCheck(t, olga, src, "channel, calling, 390×844")
	axeCheck(t, anon, src, "channel, ringing, 1280×800")
	t.Logf("accessibility check of every page took %v", time.Since(start).Round(time.Millisecond))
}

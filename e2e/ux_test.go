package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// visibleControls lists the call controls a person can see, in a fixed
// order: rendered (not display:none, not visibility:hidden) with a box.
const visibleControls = `['accept', 'decline', 'mic', 'cam', 'hangup'].filter((c) => {
  const e = document.querySelector('#channel-app .' + c);
  if (!e || !e.checkVisibility({ visibilityProperty: true, opacityProperty: true })) return false;
  const r = e.getBoundingClientRect();
  return r.width > 0 && r.height > 0;
}).join(' ')`

// startButton is true when the "start video and sound" button is visible.
const startButton = `(() => { const e = document.querySelector('#channel-app .start'); return !!e && e.checkVisibility() && e.getBoundingClientRect().width > 0 })()`

// wantControls fails the test unless exactly the named controls are visible.
func wantControls(t *testing.T, b *browser, state, want string) {
	t.Helper()
	if got := mustEval[string](b, visibleControls); got != want {
		t.Errorf("%s, %s: visible controls %q, want %q", b.name, state, got, want)
	}
}

// remoteVideo finds the peer's video.
const remoteVideo = `document.querySelector('#channel-app video.remote')`

// mustPlay waits until the peer's video plays.
func mustPlay(b *browser) {
	b.t.Helper()
	mustPlayVideo(b, remoteVideo)
}

// mustPlayVideo waits until the video the expression v finds plays: frames
// decoded, not paused, and its clock advancing (by 0.3 s from when it
// first had frames, so a frozen picture fails). A black, paused video
// fails. BenchmarkPageToPlaying's remotePlays means the same.
func mustPlayVideo(b *browser, v string) {
	b.t.Helper()
	b.mustWait(v+`.videoWidth > 0 && !`+v+`.paused`, 10*time.Second)
	at := mustEval[float64](b, v+`.currentTime`)
	b.mustWait(v+`.currentTime > `+ftoa(at+0.3)+` && !`+v+`.paused`, 5*time.Second)
}

// layout is what the page looks like from the top, unscrolled.
type layout struct {
	ScrollWidth, ClientWidth, InnerHeight float64
	// Call is the first Call button's box, Save the name form's button's,
	// People the people card's: [left, top, right, bottom].
	Call, Save, People [4]float64
}

const layoutJS = `(() => {
  scrollTo(0, 0);
  const box = (s) => { const r = document.querySelector(s).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const d = document.documentElement;
  return { ScrollWidth: d.scrollWidth, ClientWidth: d.clientWidth, InnerHeight: innerHeight,
    Call: box('#channel-app .peers .call'), Save: box('#channel-app .me button'), People: box('#channel-app .people') };
})()`

// checkLayout fails the test when the page scrolls sideways, the people
// card does not fit the first screen, or the Call or Save button is not
// wholly on it and inside the card.
func checkLayout(t *testing.T, b *browser, what string) {
	t.Helper()
	l := mustEval[layout](b, layoutJS)
	if l.ScrollWidth > l.ClientWidth {
		t.Errorf("%s, %s: the page scrolls sideways: scrollWidth %v > clientWidth %v", b.name, what, l.ScrollWidth, l.ClientWidth)
	}
	if p := l.People; p[1] < 0 || p[3] > l.InnerHeight {
		t.Errorf("%s, %s: the people card %v is not within the first screen (%vx%v)", b.name, what, p, l.ClientWidth, l.InnerHeight)
	}
	for _, bt := range []struct {
		name string
		box  [4]float64
	}{{"Call", l.Call}, {"Save", l.Save}} {
		r := bt.box
		if r[0] < 0 || r[1] < 0 || r[2] > l.ClientWidth || r[3] > l.InnerHeight {
			t.Errorf("%s, %s: %s button %v not within the first screen (%vx%v)", b.name, what, bt.name, r, l.ClientWidth, l.InnerHeight)
		}
		if p := l.People; r[0] < p[0] || r[2] > p[2] {
			t.Errorf("%s, %s: %s button %v sticks out of the people card %v", b.name, what, bt.name, r, p)
		}
	}
}

// TestCallingUX: what a person sees, on a laptop (1280×800) and on a phone
// (390×844), both with the longest name there is: no call controls without
// a call, exactly the right ones in each call state, no sideways scrolling,
// the people and a Call button on the first screen, and a peer's video that
// plays even when the call was answered without a gesture.
func TestCallingUX(t *testing.T) {
	exe := chromiumPath(t)
	artifacts := artifactsDir(t)
	srv := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
	room, err := srv.store.CreateChannel(t.Context(), "Design review", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	dana := newBrowser(t, exe, "dana (laptop)")
	erin := newBrowser(t, exe, "erin (phone)")
	dana.mustEmulateDesktop()
	erin.mustEmulatePhone()
	openBoth(t, srv.url("/c/"+room.ID), dana, erin)
	danaID, erinID := clientID(dana), clientID(erin)

	// First render, before and after going online: no call, no controls.
	for _, b := range []*browser{dana, erin} {
		wantControls(t, b, "first render", "")
		b.mustWait(connReady, 10*time.Second)
	}

	// The longest name the input takes, with nowhere to break it.
	long := strings.Repeat("W", 40)
	for _, b := range []*browser{dana, erin} {
		mustEval[bool](b, `(() => { const f = document.querySelector('#channel-app form.me'); f.elements.name.value = `+jsString(long)+`; f.requestSubmit(); return true })()`)
	}
	dana.mustWait(`document.querySelector(`+jsString(`#channel-app [data-peer="`+erinID+`"] .name`)+`)?.textContent === `+jsString(long), 5*time.Second)
	erin.mustWait(`document.querySelector(`+jsString(`#channel-app [data-peer="`+danaID+`"] .name`)+`)?.textContent === `+jsString(long), 5*time.Second)
	for _, b := range []*browser{dana, erin} {
		wantControls(t, b, "idle", "")
		checkLayout(t, b, "idle")
	}
	t.Logf("screenshots of an idle channel: %s, %s", dana.screenshot(artifacts, "idle.png"), erin.screenshot(artifacts, "idle-phone.png"))

	// Dana calls with a real click; erin's phone rings, its Accept button
	// staying where it first showed.
	mustEval[bool](erin, watchAccept)
	dana.click(callButton(erinID))
	erin.mustWait(ringing, 5*time.Second)
	mustHoldStill(t, erin)
	wantControls(t, dana, "calling", "mic cam hangup")
	wantControls(t, erin, "ringing", "accept decline")
	if l := mustEval[layout](erin, layoutJS); l.ScrollWidth > l.ClientWidth {
		t.Errorf("erin, ringing: the page scrolls sideways: %v > %v", l.ScrollWidth, l.ClientWidth)
	}
	t.Logf("screenshot of ringing on a phone: %s", erin.screenshot(artifacts, "ringing-phone.png"))

	// Erin's page answers from a script, without a gesture: the browser
	// may refuse to play the peer's video with its sound. Then the page
	// says so with a button, and a real click on it starts the video.
	erin.scriptClick(`#channel-app .accept`)
	dana.mustWait(inCall, 10*time.Second)
	erin.mustWait(inCall, 10*time.Second)
	for _, b := range []*browser{dana, erin} {
		wantControls(t, b, "in call", "mic cam hangup")
	}
	erin.mustWait(`!`+remoteVideo+`.paused || `+startButton, 10*time.Second)
	if mustEval[bool](erin, startButton) {
		t.Logf("erin's browser refused to play the video without a gesture; the page shows its start button")
		// The page retries by itself too: the video may start while this
		// looks, its button going once play() has answered; what must not
		// be is a button that stays over a playing video.
		if _, err := erin.waitFor(`!(`+startButton+` && !`+remoteVideo+`.paused)`, 2*time.Second); err != nil {
			t.Errorf("erin: the start button stays while the video plays")
		}
		t.Logf("screenshot of the start button: %s", erin.screenshot(artifacts, "start-phone.png"))
		// The page retries by itself too, so the button may go just before
		// the click lands; a button still shown must take the click.
		if pt, err := eval[[]float64](erin, clickPoint(`#channel-app .start`)); err == nil {
			erin.must(5*time.Second, chromedp.MouseClickXY(pt[0], pt[1]))
		} else if mustEval[bool](erin, startButton) {
			t.Fatal(err)
		} else {
			t.Logf("erin's video started by itself before the click")
		}
		erin.mustWait(`!`+startButton, 5*time.Second)
	} else {
		t.Logf("erin's browser played the video without a gesture")
	}
	for _, b := range []*browser{dana, erin} {
		mustPlay(b)
	}
	if mustEval[bool](erin, startButton) {
		t.Errorf("erin: the start button shows while the video plays")
	}
	t.Logf("screenshot of a call on a phone: %s", erin.screenshot(artifacts, "in-call-phone-long-name.png"))

	dana.click(`#channel-app .hangup`)
	for _, b := range []*browser{dana, erin} {
		b.mustWait(idle, 5*time.Second)
		wantControls(t, b, "ended", "")
		if mustEval[bool](b, startButton) {
			t.Errorf("%s: the start button shows after the call", b.name)
		}
		checkLayout(t, b, "after the call")
		if p := b.problems(); p != "" {
			t.Errorf("%s: page problems: %s", b.name, p)
		}
	}
}

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// oscCounter wraps the page's AudioContext so that the test can count the
// oscillators started and stopped, and see the state of the context that
// made the last one; the page itself exposes nothing.
const oscCounter = `(() => {
  const AC = window.AudioContext;
  if (!AC) return;
  const n = window.__osc = { start: 0, stop: 0 };
  window.AudioContext = class extends AC {
    createOscillator() {
      window.__toneCtx = this;
      const o = super.createOscillator(), start = o.start.bind(o), stop = o.stop.bind(o);
      o.start = (...a) => { n.start++; return start(...a); };
      o.stop = (...a) => { n.stop++; return stop(...a); };
      return o;
    }
  };
})()`

const (
	liveText  = `document.querySelector('#channel-app [aria-live]').textContent`
	lastSaid  = `(document.querySelector('#channel-app [aria-live]').lastElementChild?.textContent || '')`
	oscCounts = `JSON.stringify(window.__osc || null)`
	toneState = `(window.__toneCtx?.state || '')`
)

// watchAccept records in the page every position and size the Accept
// button has while the page rings, from the first moment it shows (a
// mutation observer, so before anything else can run) and every frame
// after; a button that moves under the pointer makes a person (or a test)
// click what is behind it.
const watchAccept = `(() => {
  const root = document.getElementById('channel-app'), a = root.querySelector('.accept');
  const seen = window.__acceptBoxes = [];
  const note = () => {
    if (root.dataset.call !== 'ringing') return;
    const r = a.getBoundingClientRect(), box = [r.left, r.top, r.width, r.height].map(Math.round).join(',');
    window.__acceptSince ??= performance.now();
    if (seen.at(-1) !== box) seen.push(box);
  };
  new MutationObserver(note).observe(root, { attributes: true, childList: true, subtree: true });
  const frame = () => { note(); requestAnimationFrame(frame); };
  frame();
  return true;
})()`

// mustHoldStill fails the test unless b's Accept button, watched by
// watchAccept since before the call came, kept one box for the first
// 1.5 s of ringing, and the caller's video stayed out of sight meanwhile
// (the person sees who calls, and nothing of them until accepting).
func mustHoldStill(t *testing.T, b *browser) {
	t.Helper()
	b.mustWait(`performance.now() - window.__acceptSince > 1500`, 5*time.Second)
	if boxes := mustEval[[]string](b, `window.__acceptBoxes`); len(boxes) != 1 {
		t.Errorf("%s: the Accept button moved while ringing: boxes (left,top,width,height) %q", b.name, boxes)
	}
	if mustEval[bool](b, `!!document.querySelector('#channel-app video.remote')?.checkVisibility()`) {
		t.Errorf("%s: the caller's video shows before the call is accepted", b.name)
	}
}

// TestRingAndKeyboard: a call placed with the keyboard alone (Tab to the
// Call button, Enter), declined with Escape; an incoming call that rings
// (a Web Audio tone, started by the first click when the page had no
// gesture yet, and a flashing title) and is announced in the live region.
func TestRingAndKeyboard(t *testing.T) {
	exe := chromiumPath(t)
	srv := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
	room, err := srv.store.CreateChannel(t.Context(), "Ring room", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	alice := newBrowser(t, exe, "alice")
	bob := newBrowser(t, exe, "bob")
	if _, err := chromedp.Call(alice.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: oscCounter}); err != nil {
		t.Fatal(err)
	}
	// Alice first, then bob: only a hello is an arrival the list
	// announces (people already there, answering ours, are not).
	if err := alice.navigate(srv.url("/c/" + room.ID)); err != nil {
		t.Fatal(err)
	}
	alice.mustWait(connReady, 10*time.Second)
	if err := bob.navigate(srv.url("/c/" + room.ID)); err != nil {
		t.Fatal(err)
	}
	aliceID, bobID := clientID(alice), clientID(bob)
	bob.mustWait(connReady, 10*time.Second)
	alice.mustWait(sees(bobID), 5*time.Second)
	bob.mustWait(sees(aliceID), 5*time.Second)
	bobName := mustEval[string](bob, `document.querySelector('#channel-app input[name=name]').value`)
	if s := mustEval[string](alice, liveText); !strings.Contains(s, "Connected to the server") || !strings.Contains(s, bobName+" joined") {
		t.Errorf("alice's live region says %q, want the connection and %s joining", s, bobName)
	}

	// Bob calls alice: her page rings.
	title := mustEval[string](alice, `document.title`)
	mustEval[bool](alice, watchAccept)
	bob.click(callButton(aliceID))
	alice.mustWait(ringing, 5*time.Second)
	mustHoldStill(t, alice)
	alice.mustWait(lastSaid+` === `+jsString(bobName+" is calling"), 2*time.Second)
	titles := mustAwait[[]string](alice, `new Promise((done) => {
  const seen = new Set(), i = setInterval(() => seen.add(document.title), 100);
  setTimeout(() => { clearInterval(i); done([...seen]); }, 2500);
})`)
	if len(titles) < 2 || !containsAll(titles, title, "📞 "+bobName+" is calling") {
		t.Errorf("titles while ringing: %q, want %q alternating with the call", titles, title)
	}
	if n := mustEval[string](alice, oscCounts); n != `{"start":1,"stop":0}` {
		t.Errorf("oscillators while ringing: %s, want one started, none stopped", n)
	}
	// Alice has not touched her page: the browser holds the tone back
	// until she does, and her first click (anywhere) starts it.
	if s := mustEval[string](alice, toneState); s != "suspended" {
		t.Errorf("the ring tone's audio before any gesture: %q, want suspended (Chromium's autoplay policy)", s)
	}
	alice.click(`main h1`)
	alice.mustWait(toneState+` === 'running'`, 2*time.Second)
	alice.mustWait(ringing, time.Second)
	// Escape (a real key event) declines; bob's call ends.
	alice.must(5*time.Second, chromedp.KeyEvent(kb.Escape))
	alice.mustWait(idle, 2*time.Second)
	bob.mustWait(idle, 10*time.Second)
	if s := mustEval[string](bob, lastSaid); s != "Declined" {
		t.Errorf("bob's live region ends with %q, want Declined", s)
	}
	if s := mustEval[string](alice, lastSaid); s != "Declined" {
		t.Errorf("alice's live region ends with %q, want Declined", s)
	}
	if s := mustEval[string](alice, `document.title`); s != title {
		t.Errorf("alice's title after the call: %q, want %q", s, title)
	}
	if n := mustEval[string](alice, oscCounts); n != `{"start":1,"stop":1}` {
		t.Errorf("oscillators after ringing: %s, want the one started stopped", n)
	}
	// Keyboard only: Tab from the top of alice's page to the Call button.
	onCall := `document.activeElement?.matches(` + jsString(callButton(bobID)) + `) === true`
	tabs := 0
	for ; tabs < 40 && !mustEval[bool](alice, onCall); tabs++ {
		alice.must(5*time.Second, chromedp.KeyEvent(kb.Tab))
	}
	if !mustEval[bool](alice, onCall) {
		t.Fatalf("40 Tabs never reached the Call button (at %s)", mustEval[string](alice, `document.activeElement?.outerHTML.slice(0, 80) || ''`))
	}
	if o := mustEval[string](alice, `getComputedStyle(document.activeElement).outlineStyle`); o == "none" {
		t.Errorf("the Call button reached by Tab shows no focus outline")
	}
	t.Logf("the Call button is %d Tabs from the top", tabs)
	alice.must(5*time.Second, chromedp.KeyEvent(kb.Enter))
	bob.mustWait(ringing, 5*time.Second)
	alice.mustWait(liveText+`.includes('Calling '+`+jsString(bobName)+`)`, 2*time.Second)
	if n := mustEval[string](alice, oscCounts); n != `{"start":1,"stop":1}` {
		t.Errorf("the caller's page made a ring tone: oscillators %s", n)
	}
	// Escape on the ringing page declines.
	bob.must(5*time.Second, chromedp.KeyEvent(kb.Escape))
	bob.mustWait(idle, 2*time.Second)
	// The caller sees it too: a second call between the same two pages is
	// declined as promptly as the first.
	alice.mustWait(idle, 10*time.Second)
	alice.mustWait(lastSaid+` === 'Declined'`, 2*time.Second)

	for _, b := range []*browser{alice, bob} {
		if p := b.problems(); p != "" {
			t.Errorf("%s: %s", b.name, p)
		}
	}
}

// containsAll is true when list holds every one of want.
func containsAll(list []string, want ...string) bool {
	have := map[string]bool{}
	for _, s := range list {
		have[s] = true
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}

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
// oscillators started and stopped; the page itself exposes nothing.
const oscCounter = `(() => {
  const AC = window.AudioContext;
  if (!AC) return;
  const n = window.__osc = { start: 0, stop: 0 };
  window.AudioContext = class extends AC {
    createOscillator() {
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
)

// TestRingAndKeyboard: a call placed with the keyboard alone (Tab to the
// Call button, Enter), declined with Escape; an incoming call that rings
// (a Web Audio tone, a flashing title) and is announced in the live region.
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
	openBoth(t, srv.url("/c/"+room.ID), alice, bob)
	aliceID, bobID := clientID(alice), clientID(bob)
	alice.mustWait(connReady, 10*time.Second)
	bob.mustWait(connReady, 10*time.Second)
	alice.mustWait(sees(bobID), 5*time.Second)
	bob.mustWait(sees(aliceID), 5*time.Second)
	bobName := mustEval[string](bob, `document.querySelector('#channel-app input[name=name]').value`)
	if s := mustEval[string](alice, liveText); !strings.Contains(s, "Connected to the server") || !strings.Contains(s, bobName+" joined") {
		t.Errorf("alice's live region says %q, want the connection and %s joining", s, bobName)
	}

	// Bob calls alice: her page rings.
	title := mustEval[string](alice, `document.title`)
	bob.click(callButton(aliceID))
	alice.mustWait(ringing, 5*time.Second)
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

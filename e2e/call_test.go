package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"channels/internal/store"
)

// DOM state of the browser client: data attributes only.
const (
	connReady = `document.getElementById('channel-app')?.dataset.conn === 'ready'`
	notReady  = `document.getElementById('channel-app')?.dataset.conn !== 'ready'`
	ringing   = `document.getElementById('channel-app')?.dataset.call === 'ringing'`
	inCall    = `document.getElementById('channel-app')?.dataset.call === 'in call'`
	idle      = `document.getElementById('channel-app')?.dataset.call === 'idle'`
	peerCount = `document.querySelectorAll('#channel-app .peers [data-peer]').length`
	rxBytes   = `+(document.getElementById('channel-app').dataset.rxBytes || 0)`
	// assetBytes sums the uncompressed bodies of the scripts and
	// stylesheets the page loaded for itself, not the chunks it loads on
	// demand (the camera check, the calls).
	assetBytes = `performance.getEntriesByType('resource').filter(e => /\.(js|css)$/.test(new URL(e.name).pathname) && !/\/(check|group|chat|moderate)\.[0-9a-f]{8}\.js$/.test(new URL(e.name).pathname)).reduce((n, e) => n + e.decodedBodySize, 0)`
)

// sees is true when the page lists the peer with this client id.
func sees(id string) string {
	return `!!document.querySelector('#channel-app [data-peer=` + jsString(id) + `]')`
}

// callButton is the Call button next to a peer.
func callButton(id string) string {
	return `#channel-app [data-peer=` + jsString(id) + `] button.call`
}

// clientID reads the page's own client id from its configuration.
func clientID(b *browser) string {
	b.t.Helper()
	return mustEval[string](b, `JSON.parse(document.getElementById('channel-config').textContent).clientId`)
}

// openBoth opens url in both browsers at once.
func openBoth(t testing.TB, url string, a, b *browser) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, br := range []*browser{a, b} {
		wg.Go(func() { errs[i] = br.navigate(url) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// meetAndCall opens the channel in both browsers, waits until they list
// each other, lets a call b and b accept, and waits until both are in the
// call; rang, when not nil, runs while b rings. It returns the time from
// opening the pages to the connected call.
func meetAndCall(t testing.TB, srv *app, ch store.Channel, a, b *browser, rang func()) (time.Duration, string, string) {
	t.Helper()
	start := time.Now()
	openBoth(t, srv.url("/c/"+ch.ID), a, b)
	aID, bID := clientID(a), clientID(b)
	if aID == bID {
		t.Fatalf("both browsers got client id %s", aID)
	}
	loaded := time.Since(start)
	a.mustWait(connReady, 10*time.Second)
	b.mustWait(connReady, 10*time.Second)
	online := time.Since(start)
	// Once both are online, each lists the other within 2 s.
	a.mustWait(sees(bID), 2*time.Second)
	b.mustWait(sees(aID), 2*time.Second)
	met := time.Since(start)

	a.click(callButton(bID))
	b.mustWait(ringing, 5*time.Second)
	rung := time.Since(start)
	if rang != nil {
		rang()
	}
	accepted := time.Now()
	b.click(`#channel-app .accept`)
	a.mustWait(inCall, 10*time.Second)
	b.mustWait(inCall, 10*time.Second)
	took := time.Since(start)
	t.Logf("pages loaded %v, online %v, listed each other %v, ringing %v, in call %v (%v after accepting)", loaded, online, met, rung, took, time.Since(accepted))
	return took, aID, bID
}

// TestCall: two browsers in one channel see each other, call, talk (video
// frames flow both ways), hang up, and survive a server restart; a third
// browser in another channel sees none of them.
func TestCall(t *testing.T) {
	exe := chromiumPath(t)
	db := filepath.Join(t.TempDir(), "channels.db")
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

	// The front page lists the public channel.
	if err := carol.navigate(srv.url("/")); err != nil {
		t.Fatal(err)
	}
	if !mustEval[bool](carol, `[...document.querySelectorAll('main a')].some(a => a.getAttribute('href') === `+jsString("/c/"+room.ID)+`)`) {
		t.Errorf("the front page does not link the public channel")
	}
	t.Logf("screenshot of the front page: %s", carol.screenshot(artifacts, "index.png"))

	// Carol waits in another channel the whole time.
	if err := carol.navigate(srv.url("/c/" + other.ID)); err != nil {
		t.Fatal(err)
	}
	carol.mustWait(connReady, 10*time.Second)

	for _, b := range []*browser{alice, bob} {
		b.mustEmulateDesktop()
	}
	took, aliceID, bobID := meetAndCall(t, srv, room, alice, bob, func() {
		t.Logf("screenshot of ringing: %s", bob.screenshot(artifacts, "ringing.png"))
	})
	t.Logf("opening the page to a connected call: %v", took)
	// The Verto sessid is random, never the client id every member sees
	// (anyone knowing it could otherwise claim the session first).
	aliceSess := alice.loginSessid()
	if aliceSess == "" || aliceSess == aliceID || aliceSess == bobID || aliceSess == bob.loginSessid() {
		t.Errorf("alice logged in with sessid %q (client ids %s, %s; bob's sessid %q)", aliceSess, aliceID, bobID, bob.loginSessid())
	}
	t.Logf("JS+CSS loaded by the channel page: %.0f bytes", mustEval[float64](alice, assetBytes))
	if n := mustEval[float64](alice, assetBytes); n > 40*1024 || n == 0 {
		t.Errorf("channel page loaded %.0f bytes of JS+CSS, want 1…40 KiB", n)
	}

	for _, b := range []*browser{alice, bob} {
		mustPlay(b)
		b.mustWait(rxBytes+` > 0`, 5*time.Second)
		first := mustEval[float64](b, rxBytes)
		b.mustWait(rxBytes+` > `+ftoa(first), 5*time.Second)
		// The peer's video is large, one's own small.
		if !mustEval[bool](b, `(() => { const r = document.querySelector('video.remote').getBoundingClientRect(), l = document.querySelector('video.local').getBoundingClientRect(); return l.width > 0 && r.width > 2 * l.width })()`) {
			t.Errorf("%s: the remote video is not large with the own video small", b.name)
		}
		if s := mustEval[string](b, `document.querySelector('#channel-app .secure').textContent`); !strings.HasPrefix(s, "Signalling end-to-end encrypted") {
			t.Errorf("%s: signalling note %q, want end-to-end encrypted", b.name, s)
		}
	}
	// Both sides show the same safety code.
	if a, b := mustEval[string](alice, `document.querySelector('.secure').textContent`), mustEval[string](bob, `document.querySelector('.secure').textContent`); a != b {
		t.Errorf("safety codes differ: %q and %q", a, b)
	}
	t.Logf("screenshot of the call: %s", alice.screenshot(artifacts, "in-call.png"))
	bob.mustEmulatePhone()
	time.Sleep(300 * time.Millisecond)
	t.Logf("screenshot on a phone: %s", bob.screenshot(artifacts, "in-call-phone.png"))

	// Mute, stop and restart the camera: the tracks follow, and video keeps
	// flowing to the peer afterwards.
	const local = `document.querySelector('#channel-app video.local').srcObject`
	alice.click(`#channel-app .mic`)
	alice.mustWait(local+`.getAudioTracks().every(t => !t.enabled) && document.querySelector('#channel-app .mic').getAttribute('aria-pressed') === 'true'`, 2*time.Second)
	alice.click(`#channel-app .mic`)
	alice.mustWait(local+`.getAudioTracks().every(t => t.enabled)`, 2*time.Second)
	alice.click(`#channel-app .cam`)
	alice.mustWait(local+`.getVideoTracks().length === 0`, 5*time.Second)
	alice.click(`#channel-app .cam`)
	alice.mustWait(local+`.getVideoTracks().length === 1`, 5*time.Second)
	// Choosing a camera (the fake one again) swaps the track in place.
	alice.mustWait(`document.querySelectorAll('#channel-app select[name=video] option').length > 0`, 5*time.Second)
	mustEval[bool](alice, `(() => { const s = document.querySelector('#channel-app select[name=video]'); s.value = s.options[0].value; s.dispatchEvent(new Event('change')); return true })()`)
	alice.mustWait(local+`.getVideoTracks().length === 1 && `+local+`.getVideoTracks()[0].readyState === 'live'`, 5*time.Second)
	first := mustEval[float64](bob, rxBytes)
	bob.mustWait(rxBytes+` > `+ftoa(first+20000), 10*time.Second)

	// A display name is the peer's text, shown as text, never as markup.
	evil := `Ålice <img src=x onerror=alert(1)> 🎉`
	mustEval[bool](alice, `(() => { const f = document.querySelector('#channel-app form'); f.elements.name.value = `+jsString(evil)+`; f.requestSubmit(); return true })()`)
	bob.mustWait(`document.querySelector(`+jsString(`#channel-app [data-peer="`+aliceID+`"] .name`)+`)?.textContent === `+jsString(evil), 5*time.Second)
	if n := mustEval[float64](bob, `document.querySelectorAll('#channel-app img').length`); n != 0 {
		t.Errorf("a display name became markup: %v <img> elements", n)
	}
	if mustEval[bool](alice, `localStorage.getItem('channels.name') !== `+jsString(evil)) {
		t.Errorf("display name not kept in the browser")
	}

	// The topic is text, never markup.
	if n := mustEval[float64](alice, `document.querySelectorAll('main b:not(#channel-app b)').length`); n != 0 {
		t.Errorf("topic rendered as HTML: %v <b> elements", n)
	}

	alice.click(`#channel-app .hangup`)
	alice.mustWait(idle, 5*time.Second)
	bob.mustWait(idle, 5*time.Second)
	for _, b := range []*browser{alice, bob} {
		if n := mustEval[float64](b, `[...document.querySelectorAll('video')].filter(v => v.srcObject).length`); n != 0 {
			t.Errorf("%s: %v videos still attached after hang-up", b.name, n)
		}
		b.mustWait(`document.querySelector(`+jsString(callButton(map[*browser]string{alice: bobID, bob: aliceID}[b]))+`).getAttribute('aria-disabled') === 'false'`, 2*time.Second)
	}

	// An outsider who knows alice's client id (carol, in another channel,
	// with her own credentials) sends her a direct "here" and an offer:
	// alice neither lists carol nor rings.
	carolID := clientID(carol)
	replies := mustAwait[string](carol, outsiderJS(aliceID))
	t.Logf("outsider's direct messages, the relay's replies: %s", replies)
	// A marker closes the window: bob renames himself after carol's
	// messages were relayed or refused, so alice's page, which takes
	// frames in order, shows the new name only after it handled hers.
	mustEval[bool](bob, `(() => { const i = document.querySelector('#channel-app input[name=name]'); i.value = 'Bob after carol'; i.form.requestSubmit(); return true })()`)
	alice.mustWait(`document.querySelector('#channel-app [data-peer=`+jsString(bobID)+`] .name')?.textContent === 'Bob after carol'`, 5*time.Second)
	if mustEval[bool](alice, sees(carolID)) || !mustEval[bool](alice, idle) {
		t.Errorf("an outsider's direct messages reached alice: she lists carol %v, call state %q", mustEval[bool](alice, sees(carolID)), mustEval[string](alice, `document.getElementById('channel-app').dataset.call`))
	}

	// Restart: a new server on the same address and database. Both pages
	// notice, reconnect by themselves and find each other again.
	srv.stop()
	alice.mustWait(notReady, 5*time.Second)
	bob.mustWait(notReady, 5*time.Second)
	restarted := time.Now()
	startApp(t, srv.addr, db)
	for _, b := range []*browser{alice, bob, carol} {
		b.mustWait(connReady, 40*time.Second)
	}
	alice.mustWait(sees(bobID), 5*time.Second)
	bob.mustWait(sees(aliceID), 5*time.Second)
	t.Logf("reconnected %v after the restart", time.Since(restarted))

	// And they can call again.
	alice.click(callButton(bobID))
	bob.mustWait(ringing, 5*time.Second)
	bob.click(`#channel-app .accept`)
	alice.mustWait(inCall, 10*time.Second)
	bob.mustWait(inCall, 10*time.Second)
	bob.click(`#channel-app .hangup`)
	alice.mustWait(idle, 5*time.Second)

	// The same browser opening the channel in a second tab takes the
	// session over: the first tab says so and stays quiet.
	tab := alice.newTab("alice's second tab")
	if err := tab.navigate(srv.url("/c/" + room.ID)); err != nil {
		t.Fatal(err)
	}
	if id := clientID(tab); id != aliceID {
		t.Fatalf("second tab has client id %s, want %s", id, aliceID)
	}
	tab.mustWait(connReady, 10*time.Second)
	if s := tab.loginSessid(); s != aliceSess {
		t.Errorf("second tab logged in with sessid %q, want the first tab's %q to take the session over", s, aliceSess)
	}
	alice.mustWait(`document.getElementById('channel-app').dataset.conn === 'punted'`, 5*time.Second)
	bob.mustWait(sees(aliceID), 2*time.Second)
	time.Sleep(time.Second)
	if !mustEval[bool](alice, `document.getElementById('channel-app').dataset.conn === 'punted'`) {
		t.Errorf("the punted tab reconnected by itself")
	}

	// Carol, in another channel, never saw anyone.
	if n := mustEval[float64](carol, peerCount); n != 0 {
		t.Errorf("carol sees %v peers from another channel", n)
	}
	for _, b := range []*browser{alice, bob, carol} {
		if p := b.problems(); p != "" {
			t.Errorf("%s: page problems: %s", b.name, p)
		}
	}
}

// outsiderJS logs in from the page with its own credentials on a socket of
// its own and sends client `to` the old direct presence answer and a call
// offer; it resolves to the relay's replies.
func outsiderJS(to string) string {
	return `(async () => {
  const cfg = JSON.parse(document.getElementById('channel-config').textContent);
  const u = new URL(cfg.vertoUrl || '/verto', location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(u.href);
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  const sessid = crypto.randomUUID ? crypto.randomUUID() : String(Math.random());
  let n = 0;
  const call = (method, params) => new Promise((ok) => {
    const id = ++n;
    ws.addEventListener('message', function h(e) {
      const m = JSON.parse(e.data);
      if (m.id === id) { ws.removeEventListener('message', h); ok(m.error ? 'error ' + m.error.message : 'ok'); }
    });
    ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, sessid } }));
  });
  const out = [await call('login', { login: cfg.clientId, passwd: cfg.password })];
  for (const m of [{ t: 'here', name: 'Mallory', key: '', inst: 'x' }, { t: 'offer', call: 'outsider-1' }]) {
    out.push(await call('verto.info', { msg: { to: ` + jsString(to) + `, body: btoa(JSON.stringify(m)) } }));
  }
  ws.close();
  return out.join(', ');
})()`
}

// BenchmarkPageToCall measures the time from opening a channel page in two
// browsers to their connected call, clicks answered at once (run with
// -benchtime=1x or a small count). The browsers are warm: they have shown
// the site's front page before, as a returning visitor's has.
func BenchmarkPageToCall(b *testing.B) {
	exe := chromiumPath(b)
	db := filepath.Join(b.TempDir(), "channels.db")
	srv := startApp(b, "127.0.0.1:0", db)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		room, err := srv.store.CreateChannel(b.Context(), fmt.Sprint("bench ", i), false, 0)
		if err != nil {
			b.Fatal(err)
		}
		alice := newBrowser(b, exe, "alice")
		bob := newBrowser(b, exe, "bob")
		openBoth(b, srv.url("/"), alice, bob)
		b.StartTimer()
		took, _, _ := meetAndCall(b, srv, room, alice, bob, nil)
		total += took
		b.StopTimer()
		alice.close()
		bob.close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/call")
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"channels/internal/config"
)

// Group calls: a mesh of up to -max-call-size people in one channel, each
// browser linked to every other. The DOM the tests read: #channel-app's
// data-call (the whole call) and data-request ("join" while someone asks
// to join the running call); one .tiles figure.tile[data-peer] per other
// member, with its video.remote, its link's data-state, and data-sharing,
// data-mic, data-cam; the Call button next to each person reads "Call",
// "Add" (not in our call while we are in one) or "In call".

// groupPCs keeps, in a test page, every RTCPeerConnection the page makes
// in window.__groupPCs, so a test can read what each link sends.
const groupPCs = `(() => {
  const PC = window.RTCPeerConnection;
  if (!PC) return;
  const pcs = window.__groupPCs = [];
  window.RTCPeerConnection = class extends PC {
    constructor(...a) { super(...a); pcs.push(this); }
  };
})()`

// vertoCounter counts, in a test page, the Verto direct messages
// (verto.info) the page sends, and the replies refusing one for the
// sender's budget (JSON-RPC error -32010), in window.__groupVerto.
const vertoCounter = `(() => {
  const c = window.__groupVerto = { info: 0, refused: 0 };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (d) {
    if (typeof d === 'string' && d.includes('"verto.info"')) c.info++;
    if (!this.__groupCounted) {
      this.__groupCounted = true;
      this.addEventListener('message', (e) => {
        if (typeof e.data !== 'string' || !e.data.includes('-32010')) return;
        try { const m = JSON.parse(e.data); if (m.error && m.error.code === -32010) c.refused++; } catch {}
      });
    }
    return send.call(this, d);
  };
})()`

// consoleKeeper keeps, in a test page, the client's console warnings and
// errors (those it prefixes "channels:") in window.__groupLog, for
// failure messages.
const consoleKeeper = `(() => {
  const log = window.__groupLog = [], t0 = performance.now();
  for (const k of ['warn', 'error']) {
    const f = console[k];
    console[k] = (...a) => { if (String(a[0]).startsWith('channels:')) log.push(Math.round(performance.now() - t0) + 'ms ' + k + ': ' + a.map((x) => x && x.message ? x.name + ': ' + x.message : String(x)).join(' ')); return f.apply(console, a); };
  }
})()`

// groupScripts are what every Chromium page of a group test runs first.
func groupScripts(b *browser) {
	b.t.Helper()
	for _, src := range []string{groupPCs, vertoCounter, consoleKeeper} {
		if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
			b.t.Fatalf("%s: add script: %v", b.name, err)
		}
	}
}

// newPerson opens a page in a browser context of its own (its own
// cookies, so its own client id) in host's Chromium: several people in
// one browser process, cheaper than a Chromium each.
func newPerson(host *browser, name string) *browser {
	host.t.Helper()
	ctx, cancel := chromedp.NewContext(host.ctx, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		host.t.Fatalf("%s: new browser context: %v", name, err)
	}
	host.t.Cleanup(cancel)
	b := &browser{t: host.t, name: name, ctx: ctx, close: cancel}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watcher}); err != nil {
		host.t.Fatalf("%s: add watcher: %v", name, err)
	}
	return b
}

// member is one person of a group call: a Chromium page or a Firefox one.
type member struct {
	t    testing.TB
	name string
	id   string
	cr   *browser
	ff   *firefox
}

func chromeMember(b *browser) *member { return &member{t: b.t, name: b.name, cr: b} }
func foxMember(f *firefox) *member    { return &member{t: f.t, name: f.name, ff: f} }

// tryEval evaluates a (synchronous) JavaScript expression in m's page.
func tryEval[T any](m *member, expr string) (T, error) {
	if m.cr != nil {
		// Longer than eval's 5 s: a page of a big call on a busy 2-core
		// machine can take a while to answer.
		ctx, cancel := context.WithTimeout(m.cr.ctx, 20*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
		if err != nil {
			return v, fmt.Errorf("%s: eval %s: %w", m.name, expr, err)
		}
		return v, nil
	}
	return ffEval[T](m.ff, expr)
}

// memberEval is tryEval that fails the test on error.
func memberEval[T any](m *member, expr string) T {
	m.t.Helper()
	v, err := tryEval[T](m, expr)
	if err != nil {
		m.t.Fatal(err)
	}
	return v
}

func (m *member) navigate(url string) error {
	if m.cr != nil {
		return m.cr.navigate(url)
	}
	return m.ff.navigate(url)
}

// tryClick clicks what sel finds with real pointer input at its centre.
func (m *member) tryClick(sel string) error {
	pt, err := tryEval[[]float64](m, clickPoint(sel))
	if err != nil {
		return err
	}
	if m.cr != nil {
		return m.cr.run(5*time.Second, chromedp.MouseClickXY(pt[0], pt[1]))
	}
	return m.ff.try(5*time.Second, "input.performActions", pointerClick(m.ff.tab, pt), nil)
}

func (m *member) click(sel string) {
	m.t.Helper()
	if err := m.tryClick(sel); err != nil {
		m.t.Fatal(err)
	}
}

// groupState describes m's call for a failure message.
const groupState = `JSON.stringify({app: Object.assign({}, document.getElementById('channel-app')?.dataset),
  say: document.querySelector('#channel-app .say')?.textContent, problem: document.querySelector('#channel-app .problem')?.textContent,
  buttons: [...document.querySelectorAll('#channel-app .peers li[data-peer]')].map((li) => li.dataset.peer.slice(0, 8) + ' ' + li.querySelector('button.call')?.textContent.trim()),
  tiles: [...document.querySelectorAll('#channel-app .tiles figure.tile')].map((f) => { const v = f.querySelector('video.remote');
    return Object.assign({peer: f.dataset.peer.slice(0, 8)}, f.dataset, v ? {w: v.videoWidth, h: v.videoHeight, paused: v.paused, t: v.currentTime} : {}); }),
  pcs: (window.__groupPCs || []).map((pc) => pc.connectionState + '/' + pc.signalingState).join(' '),
  log: (window.__groupLog || []).slice(-12)})`

// wait polls a boolean JavaScript expression in m's page until it holds,
// and returns how long that took; it fails the test, describing the call,
// when it does not within d.
func (m *member) wait(expr string, d time.Duration) time.Duration {
	m.t.Helper()
	took, err := m.waitErr(expr, d)
	if err != nil {
		m.t.Fatal(err)
	}
	return took
}

// waitErr is wait that returns the failure.
func (m *member) waitErr(expr string, d time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		ok, err := tryEval[bool](m, "!!("+expr+")")
		if err != nil {
			return 0, err
		}
		if ok {
			return time.Since(start), nil
		}
		if time.Since(start) > d {
			return 0, fmt.Errorf("%s: still not %s after %v (page state %s)", m.name, expr, d, m.state())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// state describes m's call, for a failure message.
func (m *member) state() string {
	s, err := tryEval[string](m, groupState)
	if err != nil {
		return err.Error()
	}
	return s
}

func (m *member) problems() string {
	m.t.Helper()
	return memberEval[string](m, `(window.__e2eProblems || []).join('; ')`)
}

// clickAll gives each member's click at about the same moment.
func clickAll(t testing.TB, clicks map[*member]string) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for m, sel := range clicks {
		wg.Go(func() {
			if err := m.tryClick(sel); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Fatal(err)
	}
}

const (
	callState   = `document.getElementById('channel-app')?.dataset.call`
	joinRequest = `document.getElementById('channel-app')?.dataset.request === 'join'`
)

// buttonText is the text of the Call button next to a person.
func buttonText(id string) string {
	return `document.querySelector(` + jsString(callButton(id)) + `)?.textContent.trim()`
}

// tileSel is the CSS selector of the tile of the member with this id.
func tileSel(id string) string {
	return `#channel-app .tiles figure.tile[data-peer="` + id + `"]`
}

// tileVideo finds the video of a member's tile.
func tileVideo(id string) string {
	return `document.querySelector(` + jsString(tileSel(id)+` video.remote`) + `)`
}

// tilesAre holds when the page shows exactly the tiles of ids, each
// linked ('in call') and each video with frames and not paused.
func tilesAre(ids []string) string {
	want := slices.Clone(ids)
	slices.Sort(want)
	w, _ := json.Marshal(want)
	return `(() => {
  const tiles = [...document.querySelectorAll('#channel-app .tiles figure.tile')];
  if (JSON.stringify(tiles.map((f) => f.dataset.peer).sort()) !== ` + jsString(string(w)) + `) return false;
  return tiles.every((f) => { const v = f.querySelector('video.remote');
    return f.dataset.state === 'in call' && v && v.videoWidth > 0 && !v.paused; });
})()`
}

// mustSeeAll waits until m shows exactly the tiles of the others and every
// one of their videos plays: frames decoded, not paused, and its clock
// advancing (0.3 s past where it was once all had frames), as mustPlayVideo
// means it. It returns the videos' sizes, for the log.
func (m *member) mustSeeAll(others []*member, d time.Duration) string {
	m.t.Helper()
	ids := make([]string, len(others))
	for i, o := range others {
		ids[i] = o.id
	}
	if _, err := m.waitErr(tilesAre(ids), d); err != nil {
		for _, o := range others {
			m.t.Logf("%s's page then: %s", o.name, o.state())
		}
		m.t.Fatal(err)
	}
	at := make([]float64, len(ids))
	for i, id := range ids {
		at[i] = memberEval[float64](m, tileVideo(id)+`.currentTime`)
	}
	var all []string
	for i, id := range ids {
		v := tileVideo(id)
		all = append(all, `(`+v+`.currentTime > `+ftoa(at[i]+0.3)+` && !`+v+`.paused)`)
	}
	m.wait(strings.Join(all, " && "), 5*time.Second)
	var sizes []string
	for _, o := range others {
		v := tileVideo(o.id)
		sizes = append(sizes, o.name+" "+memberEval[string](m, v+`.videoWidth + 'x' + `+v+`.videoHeight`))
	}
	return strings.Join(sizes, ", ")
}

// everyoneSeesAll checks that each of ms plays the videos of all the others.
func everyoneSeesAll(t testing.TB, what string, ms []*member) {
	t.Helper()
	start := time.Now()
	for _, m := range ms {
		var others []*member
		for _, o := range ms {
			if o != m {
				others = append(others, o)
			}
		}
		sizes := m.mustSeeAll(others, 30*time.Second)
		t.Logf("%s: %s plays %s", what, m.name, sizes)
	}
	t.Logf("%s: all %d play the other %d (checked in %v)", what, len(ms), len(ms)-1, time.Since(start).Round(time.Millisecond))
}

// mustButton waits until m's Call button next to o reads text, usable or
// not as the text means ("In call" is aria-disabled).
func (m *member) mustButton(o *member, text string) {
	m.t.Helper()
	disabled := `=== 'true'`
	if text != "In call" {
		disabled = `!== 'true'`
	}
	m.wait(buttonText(o.id)+` === `+jsString(text)+` && document.querySelector(`+jsString(callButton(o.id))+`).getAttribute('aria-disabled') `+disabled, 5*time.Second)
}

// openAll opens url in every member's page at once, then waits until
// each is online and lists every other.
func openAll(t testing.TB, url string, ms []*member) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.navigate(url) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ms {
		m.id = memberEval[string](m, `JSON.parse(document.getElementById('channel-config').textContent).clientId`)
	}
	for _, m := range ms {
		m.wait(connReady, 15*time.Second)
	}
	for _, m := range ms {
		for _, o := range ms {
			if o != m {
				m.wait(sees(o.id), 10*time.Second)
			}
		}
	}
}

// TestGroupCall: four people in one channel, one of them in Firefox, make
// a group call the ways people do: a calls b, who accepts; a adds c, who
// accepts and links to b by itself; d asks b to join and b lets d in, who
// links to all. Everyone plays the three others' videos. The call at a
// laptop's and a phone's size is screenshot and checked with axe-core.
// Then a hangs up (the others stay together), c too, and the two come
// back at the same time, each added by a different member; then both
// leave at once and come back at once, each asking a different member:
// everyone ends linked to everyone, no one half connected.
func TestGroupCall(t *testing.T) {
	chromium := chromiumPath(t)
	fx := firefoxPath(t)
	artifacts := artifactsDir(t)
	start := time.Now()
	srv := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
	room, err := srv.store.CreateChannel(t.Context(), "Group call", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	fox := newFirefox(t, fx, "b (firefox)")
	host := newBrowser(t, chromium, "a (chromium)")
	people := []*browser{host, newPerson(host, "c (chromium)"), newPerson(host, "d (chromium)")}
	for _, p := range people {
		groupScripts(p)
		p.mustEmulateDesktop()
	}
	a, b, c, d := chromeMember(people[0]), foxMember(fox), chromeMember(people[1]), chromeMember(people[2])
	all := []*member{a, b, c, d}
	t.Logf("browsers started in %v", time.Since(start).Round(time.Millisecond))

	began := time.Now()
	openAll(t, srv.url("/c/"+room.ID), all)
	t.Logf("all four online and listing each other %v after opening the pages; ids: a %.8s, b %.8s, c %.8s, d %.8s", time.Since(began).Round(time.Millisecond), a.id, b.id, c.id, d.id)
	for _, m := range all {
		for _, o := range all {
			if o != m {
				m.mustButton(o, "Call")
			}
		}
	}

	// a calls b; b accepts.
	began = time.Now()
	a.click(callButton(b.id))
	b.wait(ringing, 5*time.Second)
	b.click(`#channel-app button.accept`)
	a.wait(inCall, 20*time.Second)
	b.wait(inCall, 20*time.Second)
	t.Logf("a and b in call %v after a clicked Call", time.Since(began).Round(time.Millisecond))
	everyoneSeesAll(t, "a+b", []*member{a, b})
	a.mustButton(b, "In call")
	a.mustButton(c, "Add")
	b.mustButton(a, "In call")
	c.mustButton(a, "Call")

	// a adds c; c accepts and links to b without anyone clicking more.
	began = time.Now()
	a.click(callButton(c.id))
	c.wait(ringing, 5*time.Second)
	c.click(`#channel-app button.accept`)
	everyoneSeesAll(t, "a+b+c", []*member{a, b, c})
	t.Logf("c added: all three play each other %v after a clicked Add", time.Since(began).Round(time.Millisecond))
	b.mustButton(c, "In call")
	c.mustButton(b, "In call")
	c.mustButton(d, "Add")

	// d asks b to join; b (Firefox) accepts; d links to all three.
	began = time.Now()
	d.mustButton(b, "Call")
	d.click(callButton(b.id))
	b.wait(joinRequest, 5*time.Second)
	if s := memberEval[string](b, callState); s != "in call" {
		t.Errorf("b: asked to let d join, the call reads %q, want 'in call'", s)
	}
	if !memberEval[bool](b, `document.getElementById('channel-app').textContent.includes('asks to join')`) {
		t.Errorf("b: the page does not say d asks to join: %s", memberEval[string](b, groupState))
	}
	for _, m := range []*member{a, c} {
		t.Logf("while d asks: %s's page data-request=%q", m.name, memberEval[string](m, `document.getElementById('channel-app').dataset.request || ''`))
	}
	b.click(`#channel-app button.accept`)
	everyoneSeesAll(t, "a+b+c+d", all)
	t.Logf("d joined: all four play each other %v after d clicked Call", time.Since(began).Round(time.Millisecond))
	for _, m := range all {
		if s := memberEval[string](m, callState); s != "in call" {
			t.Errorf("%s: call state %q, want 'in call'", m.name, s)
		}
		if memberEval[bool](m, joinRequest) {
			t.Errorf("%s: a join request still shows", m.name)
		}
	}
	for _, m := range all {
		t.Logf("%s sent %s", m.name, vertoCounts(m))
	}

	// What the four-person call looks like, and axe-core over it.
	t.Logf("screenshot of a four-person call, 1280×800: %s", a.cr.screenshot(artifacts, "group-call.png"))
	a.cr.mustEmulatePhone()
	a.wait(tilesAre([]string{b.id, c.id, d.id}), 5*time.Second)
	if w := memberEval[[]float64](a, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
		t.Errorf("a, four-person call on a phone: the page scrolls sideways: scrollWidth %v > clientWidth %v", w[0], w[1])
	}
	t.Logf("screenshot of a four-person call, 390×844: %s", a.cr.screenshot(artifacts, "group-call-phone.png"))
	t.Run("axe", func(t *testing.T) {
		src := axeSource(t)
		pg := *a.cr // the same tab, failing this subtest
		pg.t = t
		axeStrict(t, &pg, src, "four-person call, 390×844")
		pg.mustEmulateDesktop()
		axeStrict(t, &pg, src, "four-person call, 1280×800")
	})
	a.cr.mustEmulateDesktop()

	// a hangs up: a is idle, the other three stay linked to each other.
	a.click(`#channel-app button.hangup`)
	a.wait(idle, 5*time.Second)
	everyoneSeesAll(t, "after a left", []*member{b, c, d})
	if n := memberEval[float64](a, `document.querySelectorAll('#channel-app .tiles figure.tile').length`); n != 0 {
		t.Errorf("a: %v tiles after hanging up", n)
	}
	a.mustButton(b, "Call")
	b.mustButton(a, "Add")

	// c hangs up too: b and d stay.
	c.click(`#channel-app button.hangup`)
	c.wait(idle, 5*time.Second)
	everyoneSeesAll(t, "after c left", []*member{b, d})

	// Two join at once: b adds a while d adds c; both accept at once.
	b.mustButton(a, "Add")
	d.mustButton(c, "Add")
	began = time.Now()
	clickAll(t, map[*member]string{b: callButton(a.id), d: callButton(c.id)})
	a.wait(ringing, 5*time.Second)
	c.wait(ringing, 5*time.Second)
	clickAll(t, map[*member]string{a: `#channel-app button.accept`, c: `#channel-app button.accept`})
	everyoneSeesAll(t, "a and c back at once", all)
	t.Logf("a and c added at once: all four play each other %v after the two Adds", time.Since(began).Round(time.Millisecond))
	for _, m := range all {
		for _, o := range all {
			if o != m {
				m.mustButton(o, "In call")
			}
		}
	}

	// And the other way: a and c leave at once, then ask to join at once,
	// a asking b and c asking d; b and d let them in at once.
	clickAll(t, map[*member]string{a: `#channel-app button.hangup`, c: `#channel-app button.hangup`})
	a.wait(idle, 5*time.Second)
	c.wait(idle, 5*time.Second)
	everyoneSeesAll(t, "after a and c left at once", []*member{b, d})
	a.mustButton(b, "Call")
	c.mustButton(d, "Call")
	began = time.Now()
	clickAll(t, map[*member]string{a: callButton(b.id), c: callButton(d.id)})
	// Having left, each must be let in again by a person: asked, b and
	// d show the request, not a tile of someone back unasked.
	for _, x := range [][2]*member{{b, a}, {d, c}} {
		m, asker := x[0], x[1]
		m.wait(joinRequest+` || !!document.querySelector(`+jsString(tileSel(asker.id))+`)`, 5*time.Second)
		if !memberEval[bool](m, joinRequest) {
			t.Fatalf("%s: %s, who had left the call, asked to join and got in without anyone accepting (page state %s)", m.name, asker.name, m.state())
		}
	}
	clickAll(t, map[*member]string{b: `#channel-app button.accept`, d: `#channel-app button.accept`})
	everyoneSeesAll(t, "a and c asked at once", all)
	t.Logf("a and c asked to join at once: all four play each other %v after the two Calls", time.Since(began).Round(time.Millisecond))

	for _, m := range all {
		if p := m.problems(); p != "" {
			t.Errorf("%s: page problems: %s", m.name, p)
		}
	}
	t.Logf("whole test %v", time.Since(start).Round(time.Millisecond))
}

// vertoCounts says how many direct messages m's page sent, and how many
// the hub refused for its budget (Chromium pages only).
func vertoCounts(m *member) string {
	if m.cr == nil {
		return "(not counted in Firefox)"
	}
	c := memberEval[struct{ Info, Refused float64 }](m, `({Info: window.__groupVerto.info, Refused: window.__groupVerto.refused})`)
	return fmt.Sprintf("%v verto.info, %v refused", c.Info, c.Refused)
}

// axeStrict runs axe-core over b's page in the light and the dark theme
// and fails the test on every violation, whatever its impact.
func axeStrict(t *testing.T, b *browser, src, what string) {
	t.Helper()
	for _, dark := range []bool{false, true} {
		axeDark(t, b, dark)
		if !mustEval[bool](b, `typeof window.axe === 'object'`) {
			if err := b.run(10*time.Second, chromedp.Evaluate[chromedp.Void](src)); err != nil {
				t.Fatalf("%s: inject axe-core: %v", what, err)
			}
		}
		w := what
		if dark {
			w += ", dark"
		}
		vs := mustAwait[[]axeViolation](b, axeRunJS)
		for _, v := range vs {
			t.Errorf("%s: %v", w, v)
		}
		t.Logf("%s: axe-core %s: %d violations", w, axeVersion, len(vs))
	}
	axeDark(t, b, false)
}

// sendersJS describes the video each of the page's live peer connections
// sends: the track's label and size, "none" without one.
const sendersJS = `JSON.stringify((window.__groupPCs || []).filter((pc) => pc.connectionState !== 'closed').map((pc) => {
  const t = pc.getSenders().map((s) => s.track).find((t) => t && t.kind === 'video');
  if (!t) return 'none';
  const s = t.getSettings();
  return t.label + ' ' + s.width + 'x' + s.height;
}))`

// frameSize is the size of a video's frames.
type frameSize struct{ W, H float64 }

// sentFrameJS measures the frames of the video track the page's first live
// link sends, by playing the track in a video element of the test's own.
const sentFrameJS = `(async () => {
  const pc = (window.__groupPCs || []).find((pc) => pc.connectionState !== 'closed');
  const t = pc && pc.getSenders().map((s) => s.track).find((t) => t && t.kind === 'video');
  if (!t) throw new Error('no video sent');
  const v = document.createElement('video');
  v.muted = true;
  v.srcObject = new MediaStream([t]);
  await v.play();
  while (!v.videoWidth) await new Promise((r) => setTimeout(r, 20));
  const size = { W: v.videoWidth, H: v.videoHeight };
  v.srcObject = null;
  return size;
})()`

// TestGroupScreenShare: in a call of three (Chromium), one presses Share
// screen: every link sends the screen instead of the camera, and the
// others' tile of the sharer says so and shows the screen at its own size;
// Stop sharing brings the camera back. The call is at the size cap (3
// here, -max-call-size): a fourth who asks to join is told the call is
// full and returns to idle, and no member is asked.
func TestGroupScreenShare(t *testing.T) {
	exe := chromiumPath(t)
	srv := startAppWith(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"), func(c *config.Config) { c.MaxCallSize = 3 })
	room, err := srv.store.CreateChannel(t.Context(), "Screen share", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Chromium's fake capture UI and devices (newBrowser's flags) make
	// getDisplayMedia, after a real click, share a fake screen without a
	// prompt, also headless.
	host := newBrowser(t, exe, "a")
	people := []*browser{host, newPerson(host, "b"), newPerson(host, "c"), newPerson(host, "d")}
	var ms []*member
	for _, p := range people {
		groupScripts(p)
		p.mustEmulateDesktop()
		ms = append(ms, chromeMember(p))
	}
	a, b, c, d := ms[0], ms[1], ms[2], ms[3]
	openAll(t, srv.url("/c/"+room.ID), ms)
	if n := memberEval[float64](a, `JSON.parse(document.getElementById('channel-config').textContent).maxCall`); n != 3 {
		t.Errorf("page config maxCall %v, want 3", n)
	}
	a.click(callButton(b.id))
	b.wait(ringing, 5*time.Second)
	b.click(`#channel-app button.accept`)
	a.wait(inCall, 20*time.Second)
	a.click(callButton(c.id))
	c.wait(ringing, 5*time.Second)
	c.click(`#channel-app button.accept`)
	three := []*member{a, b, c}
	everyoneSeesAll(t, "call of three", three)

	before := map[*member]string{}
	for _, o := range []*member{b, c} {
		before[o] = memberEval[string](o, tileVideo(a.id)+`.videoWidth + 'x' + `+tileVideo(a.id)+`.videoHeight`)
	}
	cam := awaitFor[frameSize](a.cr, sentFrameJS, 10*time.Second)
	t.Logf("a sends %s; the camera's frames are %vx%v", memberEval[string](a, sendersJS), cam.W, cam.H)

	// a shares the screen, with a real click (getDisplayMedia asks for a
	// gesture).
	if s := memberEval[string](a, `document.querySelector('#channel-app button.share').textContent.trim()`); s != "Share screen" {
		t.Errorf("a: the share button reads %q, want 'Share screen'", s)
	}
	began := time.Now()
	a.click(`#channel-app button.share`)
	a.wait(`document.querySelector('#channel-app button.share').textContent.trim() === 'Stop sharing'`, 5*time.Second)
	// Every link sends the screen: one track, not the camera.
	a.wait(`(() => { const s = JSON.parse(`+sendersJS+`); return s.length === 2 && s.every((x) => x.startsWith('screen:')); })()`, 5*time.Second)
	screen := awaitFor[frameSize](a.cr, sentFrameJS, 10*time.Second)
	t.Logf("a shares: its links send %s; the screen's frames are %vx%v", memberEval[string](a, sendersJS), screen.W, screen.H)
	if screen == cam {
		t.Fatalf("the fake screen's frames are the camera's size, %vx%v: the test cannot tell them apart", cam.W, cam.H)
	}
	for _, o := range []*member{b, c} {
		v := tileVideo(a.id)
		o.wait(`document.querySelector(`+jsString(tileSel(a.id))+`).hasAttribute('data-sharing')`, 5*time.Second)
		// The screen keeps its resolution (the camera is scaled down for
		// several peers): the others see it at its own size.
		took := o.wait(v+`.videoWidth === `+ftoa(screen.W)+` && `+v+`.videoHeight === `+ftoa(screen.H)+` && !`+v+`.paused`, 15*time.Second)
		t.Logf("%s: a's tile shows the screen at %vx%v (the camera came at %s) %v after the click (%v after data-sharing)", o.name, screen.W, screen.H, before[o], time.Since(began).Round(time.Millisecond), took.Round(time.Millisecond))
		mustPlayVideo(o.cr, v)
	}

	// Stop sharing: the camera again, on every link.
	began = time.Now()
	a.click(`#channel-app button.share`)
	a.wait(`document.querySelector('#channel-app button.share').textContent.trim() === 'Share screen'`, 5*time.Second)
	a.wait(`(() => { const s = JSON.parse(`+sendersJS+`); return s.length === 2 && s.every((x) => x !== 'none' && !x.startsWith('screen:')); })()`, 5*time.Second)
	for _, o := range []*member{b, c} {
		v := tileVideo(a.id)
		o.wait(`!document.querySelector(`+jsString(tileSel(a.id))+`).hasAttribute('data-sharing')`, 5*time.Second)
		// The camera's picture again: not the screen's size, and the
		// camera's shape.
		o.wait(`!(`+v+`.videoWidth === `+ftoa(screen.W)+` && `+v+`.videoHeight === `+ftoa(screen.H)+`) && `+v+`.videoHeight > 0 && Math.abs(`+v+`.videoWidth / `+v+`.videoHeight - `+ftoa(cam.W/cam.H)+`) < 0.02 && !`+v+`.paused`, 15*time.Second)
		t.Logf("%s: a's tile back to the camera, %s, %v after Stop sharing", o.name, memberEval[string](o, v+`.videoWidth + 'x' + `+v+`.videoHeight`), time.Since(began).Round(time.Millisecond))
		mustPlayVideo(o.cr, v)
	}

	// The call is full: d asks a to join and is refused; no member is
	// asked. Each member's page records any join request it shows.
	for _, m := range three {
		mustEval[bool](m.cr, `(() => { const root = document.getElementById('channel-app'); window.__asked = 0;
  new MutationObserver(() => { if (root.dataset.request) window.__asked++; }).observe(root, { attributes: true });
  return true; })()`)
	}
	d.mustButton(a, "Call")
	d.click(callButton(a.id))
	d.wait(`/The call is full/.test((document.querySelector('#channel-app .problem')?.textContent || '') + (document.querySelector('#channel-app .say')?.textContent || ''))`, 10*time.Second)
	d.wait(idle, 5*time.Second)
	// The refusal came from a's page, which handled d's asking before it;
	// a marker closes the window for b and c: c renames itself, and b and
	// a, which take frames in order, see the new name only after
	// everything sent before it.
	mustEval[bool](c.cr, `(() => { const i = document.querySelector('#channel-app input[name=name]'); i.value = 'Carol after d'; i.form.requestSubmit(); return true })()`)
	for _, m := range []*member{a, b} {
		m.wait(`document.querySelector(`+jsString(`#channel-app [data-peer="`+c.id+`"] .name`)+`)?.textContent === 'Carol after d'`, 5*time.Second)
	}
	for _, m := range three {
		if n := mustEval[float64](m.cr, `window.__asked`); n != 0 {
			t.Errorf("%s: was asked to let d into a full call (%v changes of data-request)", m.name, n)
		}
		if s := memberEval[string](m, callState); s != "in call" {
			t.Errorf("%s: call state %q after d was refused, want 'in call'", m.name, s)
		}
	}
	everyoneSeesAll(t, "after d was refused", three)
	for _, m := range ms {
		if p := m.problems(); p != "" {
			t.Errorf("%s: page problems: %s", m.name, p)
		}
	}
}

// cpuTicks is the CPU time (user and system, in clock ticks of 1/100 s)
// of the process pid and all its descendants, read from /proc.
func cpuTicks(pid int) (int64, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	type proc struct {
		ppid  int
		ticks int64
	}
	procs := map[int]proc{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		procs[p] = proc{ppid, ut + st}
	}
	if _, ok := procs[pid]; !ok {
		return 0, fmt.Errorf("no process %d", pid)
	}
	var total int64
	for p, pr := range procs {
		for q := p; q > 1; q = procs[q].ppid {
			if q == pid {
				total += pr.ticks
				break
			}
			if _, ok := procs[q]; !ok {
				break
			}
		}
	}
	return total, nil
}

// bytesSentJS sums the bytes of RTP the page sent on all its live links.
const bytesSentJS = `(async () => {
  let n = 0;
  for (const pc of window.__groupPCs || []) {
    if (pc.connectionState === 'closed') continue;
    (await pc.getStats()).forEach((r) => { if (r.type === 'outbound-rtp') n += r.bytesSent; });
  }
  return n;
})()`

// limitedJS says why the page's video senders send less than they could,
// as WebRTC reports it (qualityLimitationReason: "cpu", "bandwidth",
// "none"), with how many senders give each reason.
const limitedJS = `(async () => {
  const out = {};
  for (const pc of window.__groupPCs || []) {
    if (pc.connectionState === 'closed') continue;
    (await pc.getStats()).forEach((r) => { if (r.type === 'outbound-rtp' && r.kind === 'video') out[r.qualityLimitationReason] = (out[r.qualityLimitationReason] || 0) + 1; });
  }
  return Object.entries(out).map(([k, v]) => k + ':' + v).join(' ');
})()`

// awaitFor evaluates a promise in b's page and returns what it resolves to.
func awaitFor[T any](b *browser, expr string, d time.Duration) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: await %s: %v", b.name, expr, err)
	}
	return v
}

// allPlayJS keeps in window.__allPlayed a promise of the moment (Date.now())
// the page shows n tiles whose videos all play: frames, not paused, and the
// clock past where it was when it first had frames.
func allPlayJS(n int) string {
	return `window.__allPlayed = new Promise((done) => {
  const first = new Map();
  const tick = () => {
    const vs = [...document.querySelectorAll('#channel-app .tiles figure.tile video.remote')];
    let ok = vs.length >= ` + strconv.Itoa(n) + `;
    for (const v of vs) {
      if (!(v.videoWidth > 0 && !v.paused)) { ok = false; continue; }
      if (!first.has(v)) { first.set(v, v.currentTime); ok = false; } else if (!(v.currentTime > first.get(v))) ok = false;
    }
    if (ok) done(Date.now()); else setTimeout(tick, 10);
  };
  tick();
}), true`
}

// groupFigures is what one call of n browsers measured.
type groupFigures struct {
	upload, cpu []float64         // per browser: Mbit/s sent, % of one core
	joins       []time.Duration   // page-to-playing of the 3rd, 4th, … joining
	info        [][2]float64      // per browser: verto.info sent, refused — whole call
	lastJoin    [][2]float64      // the same, during the last one's joining
	names       []string          // per browser
	limited     []string          // per browser: why its video senders send less (qualityLimitationReason: how many)
	sizes       map[string]string // what the first browser plays
}

// measureGroup builds a call of n browsers, each a Chromium of its own:
// the first calls the second, then each next one asks the first to join
// and is let in at once; it times each join from the newcomer's click to
// all its videos playing, then measures every browser's upload and CPU
// over window.
func measureGroup(b *testing.B, exe string, srv *app, n int, window time.Duration, video string) groupFigures {
	room, err := srv.store.CreateChannel(b.Context(), fmt.Sprint("group of ", n), false, 0)
	if err != nil {
		b.Fatal(err)
	}
	var ms []*member
	var pids []int
	for i := range n {
		flags := []chromedp.ExecAllocatorOption{
			chromedp.Flag("use-fake-device-for-media-stream", true),
			chromedp.Flag("use-fake-ui-for-media-stream", true),
		}
		if video != "" {
			flags = append(flags, chromedp.Flag("use-file-for-fake-video-capture", video))
		}
		br := launchBrowser(b, exe, fmt.Sprint("p", i+1), flags...)
		groupScripts(br)
		br.mustEmulateDesktop()
		ms = append(ms, chromeMember(br))
		pids = append(pids, chromedp.FromContext(br.ctx).Browser.Process().Pid)
	}
	openAll(b, srv.url("/c/"+room.ID), ms)
	first := ms[0]
	var f groupFigures
	f.info = make([][2]float64, n)
	f.lastJoin = make([][2]float64, n)
	counts := func() [][2]float64 {
		out := make([][2]float64, n)
		for i, m := range ms {
			c := memberEval[struct{ Info, Refused float64 }](m, `({Info: window.__groupVerto.info, Refused: window.__groupVerto.refused})`)
			out[i] = [2]float64{c.Info, c.Refused}
		}
		return out
	}
	first.click(callButton(ms[1].id))
	ms[1].wait(ringing, 10*time.Second)
	ms[1].click(`#channel-app button.accept`)
	ms[1].mustSeeAll(ms[:1], 30*time.Second)
	for k := 2; k < n; k++ {
		newcomer := ms[k]
		if k == n-1 {
			f.lastJoin = counts()
		}
		mustEval[bool](newcomer.cr, allPlayJS(k))
		start := time.Now()
		newcomer.click(callButton(first.id))
		first.wait(joinRequest, 10*time.Second)
		first.click(`#channel-app button.accept`)
		newcomer.mustSeeAll(ms[:k], 60*time.Second) // describes every page should it fail
		played := time.UnixMilli(int64(awaitFor[float64](newcomer.cr, `window.__allPlayed`, 10*time.Second)))
		f.joins = append(f.joins, played.Sub(start))
		for _, m := range ms[:k+1] {
			var others []*member
			for _, o := range ms[:k+1] {
				if o != m {
					others = append(others, o)
				}
			}
			m.mustSeeAll(others, 60*time.Second)
		}
	}
	if n == 2 {
		first.mustSeeAll(ms[1:2], 30*time.Second)
	}
	end := counts()
	for i := range n {
		f.info[i] = end[i]
		if n > 2 {
			f.lastJoin[i] = [2]float64{end[i][0] - f.lastJoin[i][0], end[i][1] - f.lastJoin[i][1]}
		}
	}

	type sample struct {
		at    time.Time
		ticks int64
		bytes float64
	}
	take := func() []sample {
		out := make([]sample, n)
		for i, m := range ms {
			bytes := awaitFor[float64](m.cr, bytesSentJS, 30*time.Second)
			ticks, err := cpuTicks(pids[i])
			if err != nil {
				b.Fatal(err)
			}
			out[i] = sample{time.Now(), ticks, bytes}
		}
		return out
	}
	// The call settles first (bandwidth estimates ramp up over seconds),
	// then the window: durations measured, not waits for an event.
	time.Sleep(5 * time.Second)
	s0 := take()
	time.Sleep(window)
	s1 := take()
	for i := range n {
		dt := s1[i].at.Sub(s0[i].at).Seconds()
		f.upload = append(f.upload, (s1[i].bytes-s0[i].bytes)*8/dt/1e6)
		f.cpu = append(f.cpu, float64(s1[i].ticks-s0[i].ticks)/100/dt*100)
		f.names = append(f.names, ms[i].name)
	}
	for _, m := range ms {
		f.limited = append(f.limited, awaitFor[string](m.cr, limitedJS, 30*time.Second))
	}
	f.sizes = map[string]string{}
	for _, o := range ms[1:] {
		v := tileVideo(o.id)
		f.sizes[o.name] = memberEval[string](first, v+`.videoWidth + 'x' + `+v+`.videoHeight`)
	}
	for _, m := range ms {
		if p := m.problems(); p != "" {
			b.Errorf("%s: page problems: %s", m.name, p)
		}
		m.cr.close()
	}
	return f
}

// writeTexture writes a Y4M video for Chromium's fake camera
// (--use-file-for-fake-video-capture): a fine random texture sliding
// sideways, 1280×720 at 30 frames a second, one second looped. Unlike
// the built-in fake camera's flat pattern, which compresses to almost
// nothing, it keeps the encoder as busy as a real camera's picture, so
// each link sends what the client's budget allows.
func writeTexture(b testing.TB) string {
	b.Helper()
	const w, h, frames, step = 1280, 720, 30, 8
	noise := make([]byte, w*h)
	x := uint32(2463534242)
	for i := range noise { // xorshift: the same texture every run
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		noise[i] = byte(x)
	}
	p := filepath.Join(b.TempDir(), "texture.y4m")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "YUV4MPEG2 W%d H%d F30:1 Ip A1:1 C420jpeg\n", w, h)
	frame := make([]byte, w*h*3/2)
	for n := range frames {
		for y := range h {
			row := noise[y*w : (y+1)*w]
			off := (n * step) % w
			copy(frame[y*w:], row[off:])
			copy(frame[y*w+w-off:], row[:off])
		}
		for i := w * h; i < len(frame); i++ {
			frame[i] = 128
		}
		if _, err := f.WriteString("FRAME\n"); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkGroupCall measures calls of 2, 4 and 6 people, each in a
// Chromium of its own on this machine: each browser's upload (RTP bytes
// sent, all links) and CPU (its process tree, % of one core) over 10 s of
// the running call (after 5 s to settle), and how long a newcomer waits from asking to join
// until all its videos play (the 3rd person; and the last). It logs the
// Verto direct messages each page sent, and how many the hub refused for
// its budget. Two cameras: Chromium's fake "pattern" (flat, cheap to
// encode: a floor), and a "texture" (writeTexture) that makes each link
// send what the budget allows. On a 2-core machine, browsers of a call of
// 6 contend for the cores, which caps what each can use.
// Run: go test -run '^$' -bench GroupCall -benchtime 1x ./e2e/
func BenchmarkGroupCall(b *testing.B) {
	exe := chromiumPath(b)
	srv := startApp(b, "127.0.0.1:0", filepath.Join(b.TempDir(), "channels.db"))
	texture := writeTexture(b)
	// The texture at 6 is left out: six browsers encoding it five times
	// each on two cores cannot set their links up in time (each link's
	// 20 s, twice made again), which measures the machine, not the call.
	for _, src := range []struct {
		name, file string
		sizes      []int
	}{{"pattern", "", []int{2, 4, 6}}, {"texture", texture, []int{2, 4}}} {
		for _, n := range src.sizes {
			b.Run(fmt.Sprint(src.name, "/", n, " people"), func(b *testing.B) {
				var up, cpu []float64
				var join3, joinLast []time.Duration
				for range b.N {
					f := measureGroup(b, exe, srv, n, 10*time.Second, src.file)
					var tab strings.Builder
					fmt.Fprintf(&tab, "call of %d, %s camera:\n  %-4s %12s %10s %16s %18s  %s\n", n, src.name, "", "upload Mbit/s", "CPU % core", "verto.info sent", "during last join", "video limited by")
					for i := range n {
						fmt.Fprintf(&tab, "  %-4s %12.2f %10.0f %9.0f (%v refused) %9.0f (%v refused)  %s\n", f.names[i], f.upload[i], f.cpu[i], f.info[i][0], f.info[i][1], f.lastJoin[i][0], f.lastJoin[i][1], f.limited[i])
					}
					for i, j := range f.joins {
						fmt.Fprintf(&tab, "  person %d joining, page-to-playing: %v\n", i+3, j.Round(time.Millisecond))
					}
					fmt.Fprintf(&tab, "  p1 plays, after the window: %v", f.sizes)
					b.Log(tab.String())
					up = append(up, f.upload...)
					cpu = append(cpu, f.cpu...)
					if len(f.joins) > 0 {
						join3 = append(join3, f.joins[0])
						joinLast = append(joinLast, f.joins[len(f.joins)-1])
					}
				}
				mean := func(xs []float64) float64 {
					s := 0.0
					for _, x := range xs {
						s += x
					}
					return s / float64(len(xs))
				}
				b.ReportMetric(mean(up), "Mbit/s-up")
				b.ReportMetric(slices.Max(up), "Mbit/s-up-max")
				b.ReportMetric(mean(cpu), "cpu%")
				b.ReportMetric(slices.Max(cpu), "cpu%-max")
				if len(join3) > 0 {
					b.ReportMetric(float64(slices.Max(join3).Milliseconds()), "ms-join3")
					b.ReportMetric(float64(slices.Max(joinLast).Milliseconds()), "ms-join-last")
				}
			})
		}
	}
}

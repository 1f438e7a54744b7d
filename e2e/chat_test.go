package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// frameRecorder keeps, in a test page, every text frame its WebSockets
// send and receive in window.__frames (the last 20,000), so that a test
// can check what went over the wire.
const frameRecorder = `(() => {
  const f = window.__frames = [];
  const keep = (d) => { if (typeof d === 'string') { f.push(d); if (f.length > 20000) f.shift(); } };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (d) {
    if (!this.__framesHeard) {
      this.__framesHeard = true;
      this.addEventListener('message', (e) => keep(e.data));
    }
    keep(d);
    return send.call(this, d);
  };
})()`

// Chat selectors and states (the DOM contract in docs/CONTRACTS.md).
const (
	chatField   = `#chat textarea[name=message]`
	chatSend    = `#chat form.send button[type=submit]`
	chatProblem = `document.querySelector('#chat .chat-problem')?.textContent || ''`
	lockedNote  = `(() => { const n = document.querySelector('#channel-app .locked-note'); return !!n && !n.hidden && n.offsetParent !== null })()`
	removedPage = `document.getElementById('channel-app')?.dataset.conn === 'removed'`
)

// chatHas is true when a page shows a message from id whose text is text.
func chatHas(id, text string) string {
	return `[...document.querySelectorAll('#chat .messages li.msg[data-from=` + jsString(id) + `] .text')].some((p) => p.textContent === ` + jsString(text) + `)`
}

// typeAndSend puts text in m's Message field and presses Send with a real click.
func (m *member) typeAndSend(text string) {
	m.t.Helper()
	m.chatReady()
	memberEval[bool](m, `(() => { const f = document.querySelector(`+jsString(chatField)+`); f.value = `+jsString(text)+`; f.dispatchEvent(new Event('input', {bubbles: true})); return true })()`)
	m.click(chatSend)
}

// chatReady clicks into m's Message field, which loads the chat, and
// waits until the chat has taken the form over.
func (m *member) chatReady() {
	m.t.Helper()
	m.click(chatField)
	if _, err := m.waitErr(`document.getElementById('chat')?.dataset.ready !== undefined`, 5*time.Second); err != nil {
		m.t.Fatalf("%v; focus on %s, problems %s", err, memberEval[string](m, `document.activeElement?.outerHTML.slice(0, 80) || 'none'`)+" "+memberEval[string](m, `(window.__groupLog || []).join(' | ')`), m.problems())
	}
}

// sendQuickly submits each text through m's form as fast as the page
// takes them (no pointer in between), as a person mashing Enter would.
func (m *member) sendQuickly(texts []string) {
	m.t.Helper()
	m.chatReady()
	js, err := json.Marshal(texts)
	if err != nil {
		m.t.Fatal(err)
	}
	memberEval[bool](m, `(() => { const f = document.querySelector(`+jsString(chatField)+`), form = f.form;
  for (const t of `+string(js)+`) { f.value = t; f.dispatchEvent(new Event('input', {bubbles: true})); form.requestSubmit(); }
  return true })()`)
}

// plaintextIn reports the frames of m's page that carry text in the
// clear, or base64 of it at any of the three alignments (a body in the
// clear is base64 of UTF-8 JSON).
func (m *member) plaintextIn(text string) []string {
	m.t.Helper()
	frames := memberEval[[]string](m, `window.__frames || []`)
	if len(frames) == 0 {
		m.t.Fatalf("%s: no WebSocket frames recorded: the recorder did not run", m.name)
	}
	needles := []string{text}
	for pad := range 3 {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", pad) + text))
		// Drop the characters that depend on what precedes and follows.
		lead := (pad*4 + 2) / 3
		enc = strings.TrimRight(enc, "=")
		if len(enc) > lead+4 {
			needles = append(needles, enc[lead:len(enc)-3])
		}
	}
	var bad []string
	for _, f := range frames {
		for _, n := range needles {
			if strings.Contains(f, n) {
				bad = append(bad, fmt.Sprintf("%.200s", f))
				break
			}
		}
	}
	return bad
}

// framesWith counts the frames of m's page that contain s.
func (m *member) framesWith(s string) int {
	return memberEval[int](m, `(window.__frames || []).filter((f) => f.includes(`+jsString(s)+`)).length`)
}

// chatScripts are what every Chromium page of a chat test runs first.
func chatScripts(b *browser) {
	b.t.Helper()
	groupScripts(b)
	if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: frameRecorder}); err != nil {
		b.t.Fatalf("%s: add frame recorder: %v", b.name, err)
	}
}

// bodyText is the visible text of a page.
const bodyText = `document.body.innerText`

// TestChatAndModeration: what the issue calls done, with real browsers.
// Olga owns a public channel; Ann (Chromium) and Olga are in a call, Dave
// (Chromium) is there too, and Bert (Firefox) comes in later. Messages
// with Unicode, markup and a link arrive as text with a safe link, and no
// WebSocket frame of any page carries them in the clear; the newcomer
// sees none of what was said before; Enter sends; a chat out of view
// counts unread messages; a flood is stopped at the sender, who is told,
// and everything the sender's page shows as sent reaches the others.
// Olga locks the channel: a newcomer is refused, Ann's reload gets back in.
// Olga removes Dave while he is in a call with Bert: Dave's page says he
// was removed, everyone's list drops him within 3 s, Bert's call ends,
// and neither a reload, a second tab nor a fresh browser profile on the
// same address gets him back in.
func TestChatAndModeration(t *testing.T) {
	chromium := chromiumPath(t)
	fx := firefoxPath(t)
	src := axeSource(t)
	srv := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
	owner := srv.mustUser("olga", "correct horse")
	room, err := srv.store.CreateChannel(t.Context(), "Book club", true, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	url := srv.url("/c/" + room.ID)

	host := newBrowser(t, chromium, "olga (chromium)")
	ann, dave := newPerson(host, "ann (chromium)"), newPerson(host, "dave (chromium)")
	for _, b := range []*browser{host, ann, dave} {
		chatScripts(b)
		b.mustEmulateDesktop()
	}
	axeSignIn(t, host, srv, "olga", "correct horse")
	o, a, d := chromeMember(host), chromeMember(ann), chromeMember(dave)
	openAll(t, url, []*member{o, a, d})
	for _, m := range []*member{o, a, d} {
		memberEval[bool](m, `(() => { localStorage.setItem('channels.name', '`+strings.Fields(m.name)[0]+`'); return true })()`)
	}
	// Names come from local storage at load: reload once so each page uses its own.
	for _, m := range []*member{o, a, d} {
		if err := m.navigate(url); err != nil {
			t.Fatal(err)
		}
		m.wait(connReady, 15*time.Second)
	}
	for _, m := range []*member{o, a, d} {
		for _, x := range []*member{o, a, d} {
			if x != m {
				m.wait(sees(x.id), 10*time.Second)
			}
		}
	}

	// Olga and Ann are in a call.
	o.click(callButton(a.id))
	a.wait(ringing, 5*time.Second)
	a.click(`#channel-app button.accept`)
	o.wait(inCall, 20*time.Second)
	a.wait(inCall, 20*time.Second)

	// Said before Bert comes: he must never see it.
	before := "said before bert came " + randomWord()
	d.typeAndSend(before)
	o.wait(chatHas(d.id, before), 5*time.Second)
	a.wait(chatHas(d.id, before), 5*time.Second)

	fox := newFirefox(t, fx, "bert (firefox)")
	fox.call(5*time.Second, "script.addPreloadScript", map[string]any{"functionDeclaration": "() => { " + frameRecorder + "; " + consoleKeeper + " }"}, nil)
	b := foxMember(fox)
	if err := b.navigate(url); err != nil {
		t.Fatal(err)
	}
	memberEval[bool](b, `(() => { localStorage.setItem('channels.name', 'bert'); return true })()`)
	if err := b.navigate(url); err != nil {
		t.Fatal(err)
	}
	b.id = memberEval[string](b, `JSON.parse(document.getElementById('channel-config').textContent).clientId`)
	b.wait(connReady, 20*time.Second)
	for _, m := range []*member{o, a, d} {
		b.wait(sees(m.id), 10*time.Second)
		m.wait(sees(b.id), 10*time.Second)
	}
	if note := memberEval[string](b, `document.querySelector('#chat .chat-note')?.textContent || ''`); !strings.Contains(note, "join later") {
		t.Errorf("bert's page does not say that newcomers miss earlier messages: %q", note)
	}

	// Bert writes Unicode, markup and a link; everyone sees text.
	marker := "zebra" + randomWord()
	text := "Grüße 👋🏽 <b>bold</b> & see https://example.org/list?x=1 " + marker
	began := time.Now()
	b.typeAndSend(text)
	for _, m := range []*member{o, a, d} {
		m.wait(chatHas(b.id, text), 10*time.Second)
	}
	t.Logf("bert's message shown on the three other pages %v after his click (two of them in a call)", time.Since(began).Round(time.Millisecond))
	b.wait(chatHas(b.id, text), time.Second)
	if got := memberEval[bool](b, chatHas(d.id, before)); got {
		t.Errorf("bert, a newcomer, sees a message sent before he came")
	}
	for _, m := range []*member{o, a, d} {
		li := `document.querySelector('#chat .messages li.msg[data-from=` + jsString(b.id) + `]')`
		if n := memberEval[int](m, li+`.querySelectorAll('b, script, img').length`); n != 0 {
			t.Errorf("%s: bert's markup became %d elements", m.name, n)
		}
		link := memberEval[map[string]string](m, `(() => { const l = `+li+`.querySelector('a'); return l ? {href: l.href, target: l.target, rel: l.rel, text: l.textContent} : {} })()`)
		if link["href"] != "https://example.org/list?x=1" || link["target"] != "_blank" || link["rel"] != "noopener noreferrer" || link["text"] != "https://example.org/list?x=1" {
			t.Errorf("%s: the link is %v", m.name, link)
		}
		if who := memberEval[string](m, li+`.querySelector('.who')?.textContent || ''`); who != "bert" {
			t.Errorf("%s: bert's message is signed %q", m.name, who)
		}
		if dt := memberEval[string](m, li+`.querySelector('time')?.getAttribute('datetime') || ''`); dt == "" {
			t.Errorf("%s: bert's message has no time", m.name)
		}
	}
	// The wire: the broadcast went out, and no page's frames carry the text.
	if b.framesWith(`"verto.broadcast"`) == 0 {
		t.Errorf("bert's page sent no broadcast: the frame recorder saw nothing")
	}
	for _, m := range []*member{o, a, d, b} {
		if bad := m.plaintextIn(marker); len(bad) > 0 {
			t.Errorf("%s: %d frames carry the message's text in the clear, e.g. %s", m.name, len(bad), bad[0])
		}
	}
	if note := memberEval[string](o, `document.querySelector('#chat .chat-note')?.textContent || ''`); !strings.Contains(strings.ToLower(note), "sealed") {
		t.Errorf("olga's page does not say whether messages are sealed: %q", note)
	}

	// Enter sends (Ann, in the call); the field empties.
	enter := "sent with enter " + randomWord()
	a.cr.must(5*time.Second, chromedp.Focus(chatField), chromedp.SendKeys(chatField, enter+kb.Enter))
	o.wait(chatHas(a.id, enter), 5*time.Second)
	// (CDP types Enter as a key press and a separate character event,
	// which a page cannot cancel as it cancels a real key's: so a lone
	// newline may remain.)
	a.wait(`document.querySelector(`+jsString(chatField)+`).value.trim() === ''`, time.Second)

	// Unread: what Olga has not seen is counted (her chat sits below the
	// fold); once she has looked, none. Then her chat out of view on a
	// small phone, scrolled to the top: a new message counts one.
	o.wait(`!document.querySelector('#chat button.unread').hidden`, 3*time.Second)
	memberEval[bool](o, `(() => { document.querySelector('#chat .messages li.msg:last-child').scrollIntoView({block: 'end'}); return true })()`)
	o.wait(`document.querySelector('#chat button.unread').hidden`, 3*time.Second)
	o.cr.must(5*time.Second, chromedp.EmulateViewport(390, 560, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch))
	memberEval[bool](o, `(() => { scrollTo(0, 0); document.querySelector('#chat .messages').scrollTop = 0; return true })()`)
	o.wait(`document.querySelector('#chat .messages li.msg:last-child').getBoundingClientRect().top > innerHeight`, 2*time.Second)
	unseen := "while olga looked away " + randomWord()
	d.typeAndSend(unseen)
	o.wait(chatHas(d.id, unseen), 5*time.Second)
	o.wait(`(() => { const u = document.querySelector('#chat button.unread'); return u && !u.hidden && u.textContent.includes('1 unread') })()`, 3*time.Second)
	// The people list and the Call buttons stay reachable on the phone.
	o.wait(`document.querySelector(`+jsString(callButton(d.id))+`)?.offsetParent !== null`, time.Second)
	o.click(`#chat button.unread`)
	o.wait(`(() => { const r = document.querySelector('#chat .messages li.msg:last-child').getBoundingClientRect(); return r.bottom <= innerHeight + 1 && r.top >= 0 })()`, 3*time.Second)
	o.wait(`document.querySelector('#chat button.unread').hidden`, 2*time.Second)
	host.mustEmulateDesktop()

	// Flood: Dave mashes Enter 14 times. His page stops him and says so,
	// keeping the text; every message his page shows as sent reaches
	// the others, and nothing else (a marker closes the window).
	floodTexts := make([]string, 14)
	for i := range floodTexts {
		floodTexts[i] = fmt.Sprintf("flood %d %s", i, randomWord())
	}
	d.sendQuickly(floodTexts)
	d.wait(`(`+chatProblem+`).includes('too fast')`, 3*time.Second)
	if v := memberEval[string](d, `document.querySelector(`+jsString(chatField)+`).value`); v == "" {
		t.Errorf("dave's unsent text was not kept in the field")
	}
	floods := `[...document.querySelectorAll('#chat .messages li.msg[data-from=` + jsString(d.id) + `] .text')].filter((p) => p.textContent.startsWith('flood ')).length`
	sent := memberEval[int](d, floods)
	told := memberEval[string](d, chatProblem)
	// Wait for the budget to refill by one message, then close the window.
	closing := "end of flood " + randomWord()
	deadline := time.Now().Add(5 * time.Second)
	for {
		memberEval[bool](d, `(() => { const f = document.querySelector(`+jsString(chatField)+`); f.value = `+jsString(closing)+`; f.form.requestSubmit(); return true })()`)
		if ok, _ := tryEval[bool](d, chatHas(d.id, closing)); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dave could not send a message after the flood: %s", memberEval[string](d, chatProblem))
		}
		time.Sleep(250 * time.Millisecond) // the person waits and tries again
	}
	for _, m := range []*member{o, a, b} {
		m.wait(chatHas(d.id, closing), 5*time.Second)
		if got := memberEval[int](m, floods); got != sent {
			t.Errorf("%s shows %d of dave's flood; dave's page shows %d sent", m.name, got, sent)
		}
	}
	t.Logf("flood: dave's page sent %d of the 14 before saying %q", sent, told)

	// Lock: a newcomer is refused; Ann's reload gets back in.
	o.click(`#channel-app button.lock`)
	o.wait(`document.querySelector('#channel-app button.lock')?.textContent === 'Unlock channel'`, 5*time.Second)
	for _, m := range []*member{o, a, d, b} {
		m.wait(lockedNote, 3*time.Second)
	}
	eve := newPerson(host, "eve (chromium)")
	if err := eve.navigate(url); err != nil {
		t.Fatal(err)
	}
	if body := mustEval[string](eve, bodyText); !strings.Contains(body, "locked") || mustEval[bool](eve, `!!document.getElementById('channel-app')`) {
		t.Errorf("a newcomer to the locked channel got in: %.300s", body)
	}
	if err := a.navigate(url); err != nil {
		t.Fatal(err)
	}
	a.wait(connReady, 15*time.Second)
	a.wait(sees(o.id), 5*time.Second)
	a.wait(lockedNote, 3*time.Second)
	o.click(`#channel-app button.lock`)
	o.wait(`document.querySelector('#channel-app button.lock')?.textContent === 'Lock channel'`, 5*time.Second)
	a.wait(`!`+lockedNote, 3*time.Second)

	// Dave calls Bert; then Olga removes Dave.
	d.click(callButton(b.id))
	b.wait(ringing, 10*time.Second)
	b.click(`#channel-app button.accept`)
	d.wait(inCall, 20*time.Second)
	b.wait(inCall, 20*time.Second)

	row := `#channel-app .peers li[data-peer=` + jsString(d.id) + `]`
	o.click(row + ` button.remove`)
	o.wait(`document.activeElement?.matches(`+jsString(row+` form.remove-form select[name=minutes]`)+`)`, 2*time.Second)
	if v := memberEval[string](o, `document.querySelector(`+jsString(row+` select[name=minutes]`)+`).value`); v != "60" {
		t.Errorf("the removal's default period is %q minutes, want 60", v)
	}
	axeStrict(t, host, src, "channel with chat and the remove form open, 1280×800")
	began = time.Now()
	o.click(row + ` form.remove-form button[type=submit]`)
	d.wait(removedPage, 3*time.Second)
	if s := memberEval[string](d, `document.querySelector('#channel-app .status')?.textContent || ''`); !strings.Contains(s, "removed") {
		t.Errorf("dave's page says %q, not that he was removed", s)
	}
	for _, m := range []*member{o, a, b} {
		m.wait(`!`+sees(d.id), 3*time.Second)
	}
	t.Logf("dave removed: off the three lists %v after olga's click", time.Since(began).Round(time.Millisecond))
	b.wait(idle, 3*time.Second)
	d.wait(idle, 3*time.Second)
	if memberEval[bool](d, `!document.querySelector(`+jsString(chatField)+`).disabled`) {
		t.Errorf("dave's Message field is still usable after his removal")
	}

	// Dave reloads; opens a second tab; tries a fresh profile on the same
	// address: each time the page says he was removed, and nobody lists him.
	for _, try := range []struct {
		what string
		b    *browser
	}{{"reload", dave}, {"second tab", dave.newTab("dave's second tab")}, {"new profile", newPerson(host, "dave again")}} {
		if err := try.b.navigate(url); err != nil {
			t.Fatal(err)
		}
		body := mustEval[string](try.b, bodyText)
		if !strings.Contains(body, "removed") || mustEval[bool](try.b, `!!document.getElementById('channel-config')`) {
			t.Errorf("dave's %s got in: %.300s", try.what, body)
		}
	}
	if memberEval[bool](o, sees(d.id)) || memberEval[bool](b, sees(d.id)) {
		t.Errorf("dave is listed again after his attempts to come back")
	}
	// The others still chat.
	after := "after dave " + randomWord()
	o.typeAndSend(after)
	a.wait(chatHas(o.id, after), 5*time.Second)
	b.wait(chatHas(o.id, after), 5*time.Second)
	for _, m := range []*member{o, a, b} {
		if p := m.problems(); p != "" {
			t.Errorf("%s: page problems: %s", m.name, p)
		}
	}
}

// randomWord is a short random word, so that texts differ between runs.
func randomWord() string {
	return rand.Text()[:8]
}

// TestClusterChatAndRemoval: chat and removal across two processes of
// one cluster. Olga, the owner, and Carol are on the first process, Bob
// on the second. A message from Bob reaches both (its key travels as a
// direct message, the message as a broadcast: two paths over NATS whose
// order is not guaranteed), and Carol's reaches him. Olga removes Bob:
// the first process closes his socket on the second, his page says he
// was removed, both lists drop him within 3 s, and his reload on the
// second process is refused.
func TestClusterChatAndRemoval(t *testing.T) {
	exe := chromiumPath(t)
	one, two := startClusterPair(t)
	owner := one.mustUser("olga", "correct horse")
	room, err := one.store.CreateChannel(t.Context(), "Across processes", true, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	host := newBrowser(t, exe, "olga")
	carol, bob := newPerson(host, "carol"), newPerson(host, "bob")
	for _, b := range []*browser{host, carol, bob} {
		chatScripts(b)
		b.mustEmulateDesktop()
	}
	axeSignIn(t, host, one, "olga", "correct horse")
	o, c, b := chromeMember(host), chromeMember(carol), chromeMember(bob)
	for _, p := range []struct {
		m   *member
		srv *app
	}{{o, one}, {c, one}, {b, two}} {
		if err := p.m.navigate(p.srv.url("/c/" + room.ID)); err != nil {
			t.Fatal(err)
		}
		p.m.id = memberEval[string](p.m, `JSON.parse(document.getElementById('channel-config').textContent).clientId`)
	}
	all := []*member{o, c, b}
	for _, m := range all {
		m.wait(connReady, 15*time.Second)
		for _, x := range all {
			if x != m {
				m.wait(sees(x.id), 10*time.Second)
			}
		}
	}

	hello := "hello across processes " + randomWord()
	began := time.Now()
	b.typeAndSend(hello)
	o.wait(chatHas(b.id, hello), 5*time.Second)
	c.wait(chatHas(b.id, hello), 5*time.Second)
	t.Logf("bob's first message (its key, then itself) shown on the other process %v after his click", time.Since(began).Round(time.Millisecond))
	reply := "reply " + randomWord()
	c.typeAndSend(reply)
	b.wait(chatHas(c.id, reply), 5*time.Second)
	for _, m := range all {
		if bad := m.plaintextIn(hello); len(bad) > 0 {
			t.Errorf("%s: %d frames carry bob's text in the clear, e.g. %s", m.name, len(bad), bad[0])
		}
	}

	row := `#channel-app .peers li[data-peer=` + jsString(b.id) + `]`
	o.click(row + ` button.remove`)
	o.wait(`!!document.querySelector(`+jsString(row+` form.remove-form`)+`)`, 2*time.Second)
	began = time.Now()
	o.click(row + ` form.remove-form button[type=submit]`)
	b.wait(removedPage, 3*time.Second)
	t.Logf("bob's page, on the other process, says he was removed %v after olga's click", time.Since(began).Round(time.Millisecond))
	o.wait(`!`+sees(b.id), 3*time.Second)
	c.wait(`!`+sees(b.id), 3*time.Second)
	t.Logf("bob off both lists %v after olga's click", time.Since(began).Round(time.Millisecond))
	if err := b.navigate(two.url("/c/" + room.ID)); err != nil {
		t.Fatal(err)
	}
	if body := memberEval[string](b, bodyText); !strings.Contains(body, "removed") {
		t.Errorf("bob's reload on the second process got in: %.300s", body)
	}
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ringer, View, callNews, connNews } from '../view.js';
import { installDom } from './dom.js';

/** A window with just what Ringer touches, recording what happens. */
function fakeWindow({ hidden = false, permission = 'default', audio = true, gesture = false } = {}) {
  const log = [];
  /** @type {Map<string, Set<() => void>>} */
  const listeners = new Map();
  /** @type {Map<number, () => void>} */
  const timers = new Map();
  let next = 1;
  class AudioParam { value = 0; setTargetAtTime(v, at) { log.push(`gain ${v}@${at}`); } }
  class Node { connect(n) { return n; } }
  class FakeAudio {
    currentTime = 10;
    state = 'suspended';
    destination = new Node();
    createGain() { return Object.assign(new Node(), { gain: new AudioParam() }); }
    createOscillator() {
      return Object.assign(new Node(), { frequency: new AudioParam(), start: () => log.push('osc start'), stop: () => log.push('osc stop') });
    }
    // Browsers start audio only after a gesture on the page.
    resume() {
      log.push('resume');
      if (!w.activated) return Promise.reject(new Error('no gesture'));
      this.state = 'running';
      return Promise.resolve();
    }
    close() { log.push('ctx close'); return Promise.resolve(); }
  }
  class FakeNotification {
    static permission = permission;
    constructor(title) { log.push('notify ' + title); }
    close() { log.push('notify close'); }
  }
  const w = {
    document: { title: 'Standup', hidden },
    AudioContext: audio ? FakeAudio : undefined,
    Notification: FakeNotification,
    setInterval: (f) => { timers.set(next, f); return next++; },
    clearInterval: (t) => timers.delete(t),
    focus: () => {},
    activated: gesture,
    addEventListener: (/** @type {string} */ t, /** @type {() => void} */ f) => { listeners.set(t, (listeners.get(t) || new Set()).add(f)); },
    removeEventListener: (/** @type {string} */ t, /** @type {() => void} */ f) => { listeners.get(t)?.delete(f); },
    /** A click or key press: the page has a gesture from now on. @param {string} t */
    fire: (t) => { w.activated = true; for (const f of listeners.get(t) || []) f(); },
    listeners,
    tick: () => { for (const f of timers.values()) f(); },
    timers,
    log,
  };
  return w;
}

test('ringing flashes the title, beeps, and restores everything', () => {
  const w = fakeWindow();
  const r = new Ringer(w);
  r.start('Bob');
  r.start('Bob'); // idempotent
  assert.equal(w.timers.size, 1);
  assert.equal(w.document.title, '📞 Bob is calling');
  assert.deepEqual(w.log.filter((l) => l.startsWith('osc')), ['osc start']);
  assert.equal(w.log.filter((l) => l.startsWith('gain 0.12')).length, 2, 'two beeps at once');
  w.tick();
  assert.equal(w.document.title, 'Standup');
  w.tick();
  assert.equal(w.document.title, '📞 Bob is calling');
  assert.equal(w.log.filter((l) => l.startsWith('gain 0.12')).length, 4, 'two more beeps 2 s later');
  assert.ok(!w.log.some((l) => l.startsWith('notify')), 'a visible tab is not notified');
  r.stop();
  assert.equal(w.document.title, 'Standup');
  assert.equal(w.timers.size, 0);
  assert.ok(w.log.includes('osc stop') && w.log.includes('ctx close'));
  r.stop(); // twice is harmless
});

test('a tone held back for want of a gesture starts on the next click or key', async () => {
  const w = fakeWindow();
  const r = new Ringer(w);
  r.start('Bob');
  await new Promise((ok) => setTimeout(ok));
  assert.equal(r.audio?.ctx.state, 'suspended', 'no gesture yet: the context waits');
  assert.equal(w.listeners.get('pointerdown')?.size, 1);
  const beeps = () => w.log.filter((l) => l.startsWith('gain 0.12')).length;
  const before = beeps();
  w.fire('keydown');
  await new Promise((ok) => setTimeout(ok));
  assert.equal(r.audio?.ctx.state, 'running', 'the key press started the tone');
  assert.equal(beeps(), before + 2, 'and it beeps at once');
  w.fire('pointerdown'); // running already: nothing more
  await new Promise((ok) => setTimeout(ok));
  assert.equal(beeps(), before + 2);
  r.stop();
  assert.equal(w.listeners.get('pointerdown')?.size, 0, 'no listeners after ringing');
  assert.equal(w.listeners.get('keydown')?.size, 0);
});

test('a gesture after ringing stopped starts nothing', async () => {
  const w = fakeWindow();
  const r = new Ringer(w);
  r.start('Bob');
  r.stop();
  const resumes = w.log.filter((l) => l === 'resume').length;
  w.fire('pointerdown');
  await new Promise((ok) => setTimeout(ok));
  assert.equal(w.log.filter((l) => l === 'resume').length, resumes);
});

test('notifications only when hidden and already allowed', () => {
  for (const [hidden, permission, want] of /** @type {const} */ ([[true, 'granted', true], [true, 'default', false], [true, 'denied', false], [false, 'granted', false]])) {
    const w = fakeWindow({ hidden, permission });
    const r = new Ringer(w);
    r.start('Bob');
    assert.equal(w.log.includes('notify Bob is calling'), want, `hidden ${hidden}, ${permission}`);
    r.stop();
    assert.equal(w.log.includes('notify close'), want);
  }
});

test('no Web Audio: silent but still flashing', () => {
  const w = fakeWindow({ audio: false });
  const r = new Ringer(w);
  r.start('Bob');
  assert.equal(w.document.title, '📞 Bob is calling');
  r.stop();
  assert.equal(w.document.title, 'Standup');
});

test('announcements', () => {
  const cases = [
    ['', 'idle', ''],
    ['idle', 'idle', ''],
    ['idle', 'ringing', 'Bob is calling'],
    ['idle', 'calling', 'Calling Bob'],
    ['connecting', 'in call', 'Call with Bob connected'],
    ['in call', 'reconnecting', 'Call interrupted, reconnecting'],
    ['reconnecting', 'in call', 'Call reconnected'],
    ['ringing', 'idle', 'Call ended'],
  ];
  for (const [prev, state, want] of cases) assert.equal(callNews(prev, state, 'Bob', ''), want, `${prev} → ${state}`);
  assert.equal(callNews('calling', 'idle', 'Bob', 'Declined'), 'Declined');
  assert.equal(connNews('connecting', 'ready'), 'Connected to the server');
  assert.equal(connNews('ready', 'ready'), '');
  assert.equal(connNews('ready', 'reconnecting'), 'Reconnecting…');
  assert.equal(connNews('', 'connecting'), '');
  assert.equal(connNews('ready', 'removed'), 'You were removed from this channel');
});

test('removed from the channel: the status says so, in words too', (t) => {
  const { view, root, cls, live } = newView(t);
  view.setConn('ready');
  view.setConn('removed');
  assert.equal(root.dataset.conn, 'removed');
  assert.equal(cls('status').textContent, 'You were removed from this channel');
  assert.equal(live().at(-1), 'You were removed from this channel');
});

test('locked: a note in the people list says nobody new can join', (t) => {
  const { view, find } = newView(t);
  const note = find((e) => e.tagName === 'P' && e.getAttribute('class')?.split(' ').includes('locked-note'))[0];
  assert.ok(note.parentNode.getAttribute('class') === 'people', 'in the people aside');
  assert.equal(note.hidden, true, 'not locked at first');
  view.setLocked(true);
  assert.equal(note.hidden, false);
  assert.equal(note.textContent, 'This channel is locked: nobody new can join.');
  /** @type {boolean[]} */
  const told = [];
  view.mod = { row() {}, lock: (on) => told.push(on) };
  view.setLocked(false);
  assert.equal(note.hidden, true);
  assert.deepEqual(told, [false], 'the managers\' hook hears of it');
});

test('the chat section moves in after the people; focusing it loads the chat', (t) => {
  /** @type {any} */
  let field = null;
  const { root, called } = newView(t, (doc) => {
    const chat = doc.createElement('section');
    chat.setAttribute('id', 'chat');
    const form = doc.createElement('form');
    field = doc.createElement('textarea');
    form.append(field);
    chat.append(form);
    doc.body.append(chat); // server-rendered after #channel-app
    return chat;
  });
  const kids = root.children.map((/** @type {any} */ e) => e.getAttribute('id') || e.getAttribute('class'));
  assert.deepEqual(kids, ['stage', 'people', 'chat', 'announce'], 'after the people, the live region stays last');
  assert.deepEqual(called, []);
  field.fire('focusin');
  assert.deepEqual(called, ['chat'], 'the field\'s focus asks for the chat');
});

test('without a chat section the page is as before', (t) => {
  const { root } = newView(t);
  assert.deepEqual(root.children.map((/** @type {any} */ e) => e.getAttribute('class')), ['stage', 'people', 'announce']);
});

test('people list: the managers\' hook sees every row, new and updated', (t) => {
  const { view, row } = newView(t);
  view.setPeers([ann], true);
  /** @type {string[]} */
  const seen = [];
  view.mod = { row: (li, p) => seen.push(li.getAttribute('data-peer') + ':' + p.name), lock() {} };
  view.setPeers([ann, bob], true);
  view.setPeers([{ id: 'a', name: 'Annie' }, bob], true);
  assert.deepEqual(seen, ['a:Ann', 'b:Bob', 'a:Annie', 'b:Bob']);
  assert.ok(row('b'));
});

/** Actions that record the calls asked for. */
function recordingActions() {
  /** @type {string[]} */
  const called = [];
  const nop = () => {};
  return {
    called,
    act: {
      call: (/** @type {string} */ id) => called.push(id), accept: () => called.push('accept'), decline: () => called.push('decline'),
      hangup: nop, mic: nop, camera: nop, share: () => called.push('share'), name: nop, device: nop, reconnect: nop, preview: nop,
      chat: () => called.push('chat'),
    },
  };
}

/**
 * A view on a fresh fake document, and ways to look at it as a person (or the e2e tests) would.
 * @param {any} t @param {(doc: any) => any} [chat] makes the server-rendered chat section
 */
function newView(t, chat) {
  const { doc, root } = installDom(t);
  const { act, called } = recordingActions();
  const view = new View(/** @type {any} */ (root), act, chat?.(doc));
  const find = (/** @type {(e: any) => boolean} */ f) => [...root.all()].filter(f);
  const row = (/** @type {string} */ id) => find((e) => e.tagName === 'LI' && e.getAttribute('data-peer') === id)[0];
  const button = (/** @type {string} */ id) => row(id)?.children.find((e) => e.tagName === 'BUTTON');
  const live = () => find((e) => e.getAttribute('aria-live'))[0].children.map((p) => p.textContent);
  const list = () => find((e) => e.tagName === 'UL')[0].children.map((li) => li.getAttribute('data-peer') + ':' + li.textContent);
  const cls = (/** @type {string} */ c) => find((e) => e.getAttribute('class') === c)[0];
  const tiles = () => cls('tiles');
  const tile = (/** @type {string} */ id) => tiles().children.find((/** @type {any} */ f) => f.getAttribute('data-peer') === id);
  return { doc, root, view, called, row, button, live, list, find, cls, tiles, tile };
}

const ann = { id: 'a', name: 'Ann' }, bob = { id: 'b', name: 'Bob' }, cy = { id: 'c', name: 'Cy' };

test('people list: a focused Call button keeps the focus through every kind of update', (t) => {
  const { doc, view, row, button, list } = newView(t);
  view.setPeers([ann, bob, cy], true);
  const b = button('b');
  b.focus();
  assert.equal(doc.activeElement, b);
  const still = (/** @type {string} */ what) => {
    assert.equal(doc.activeElement, b, what + ': focus kept');
    assert.equal(button('b'), b, what + ': the same button');
    assert.ok(b.isConnected, what);
  };
  view.setPeers([ann, bob, cy], true);
  still('unchanged');
  view.setPeers([bob, cy], true);
  still('a row above removed');
  assert.deepEqual(list(), ['b:BobCall', 'c:CyCall']);
  view.setPeers([ann, bob, { id: 'd', name: 'Di' }], true);
  still('rows added above and below, one removed');
  assert.deepEqual(list(), ['a:AnnCall', 'b:BobCall', 'd:DiCall']);
  view.setPeers([ann, bob, { id: 'd', name: 'Di' }], false);
  still('calls no longer possible');
  assert.equal(b.getAttribute('aria-disabled'), 'true');
  view.setPeers([ann, bob, { id: 'd', name: 'Di' }], true);
  still('calls possible again');
  assert.equal(b.getAttribute('aria-disabled'), 'false');
  view.setPeers([ann, { id: 'b', name: 'Zed' }, { id: 'd', name: 'Di' }], true);
  still('its peer renamed');
  assert.equal(row('b').textContent, 'ZedCall');
  // Sorted by name, a rename moves rows: the focused one too.
  view.setPeers([{ id: 'b', name: 'Aaron' }, ann, { id: 'd', name: 'Di' }], true);
  still('its row moved first');
  assert.deepEqual(list(), ['b:AaronCall', 'a:AnnCall', 'd:DiCall']);
  view.setPeers([ann, { id: 'd', name: 'Di' }, { id: 'b', name: 'Zoe' }], true);
  still('its row moved last');
  assert.deepEqual(list(), ['a:AnnCall', 'd:DiCall', 'b:ZoeCall']);
  view.setPeers([ann], true);
  assert.equal(row('b'), undefined, 'its peer gone: so is the row');
  assert.notEqual(doc.activeElement, b);
});

test('people list: rows stay put while others come and go', (t) => {
  const { view, row, button } = newView(t);
  view.setPeers([ann, bob], true);
  const b = button('b');
  b.focus();
  view.setPeers([ann, bob, cy], true);
  view.setPeers([bob, cy], false);
  view.setPeers([bob, cy], true);
  assert.deepEqual(b.focusLog, ['focus'], 'never blurred, not even for a moment');
  assert.equal(row('b').children[0].textContent, 'Bob');
});

test('people list: the live region says only what changed', (t) => {
  const { view, live } = newView(t);
  const before = live();
  view.setPeers([], true);
  assert.deepEqual(live(), before, 'nobody yet: nothing said');
  view.setPeers([ann], true, ['a']);
  assert.deepEqual(live().slice(before.length), ['Ann joined']);
  const said = () => live().slice(-1)[0];
  // The region keeps its last few words: anything said shifts them.
  let was = live();
  view.setPeers([ann], false);
  view.setPeers([ann], true);
  view.setPeers([{ ...ann }], true);
  assert.deepEqual(live(), was, 'unchanged lists (calls possible or not) say nothing');
  view.setPeers([ann, bob], true, ['b']);
  assert.equal(said(), 'Bob joined', 'only the newcomer, not the whole list');
  view.setPeers([{ id: 'a', name: 'Annie' }, bob], true);
  assert.equal(said(), 'Ann is now Annie');
  view.setPeers([bob, cy], true, ['c']);
  assert.equal(said(), 'Annie left, Cy joined', 'changes at once: one announcement');
  was = live();
  assert.equal(was.length, 3, 'full: what is said next pushes the oldest out');
  view.setPeers([bob, cy], true);
  view.setPeers([bob, cy], false);
  assert.deepEqual(live(), was);
});

test('people list: joined are those who arrived, not those found here; leaving is always said', (t) => {
  const { view, live, list } = newView(t);
  const before = live();
  // The page opens: those already here answer its hello, one by one.
  view.setPeers([ann], true);
  view.setPeers([ann, bob], true, []);
  assert.deepEqual(list(), ['a:AnnCall', 'b:BobCall']);
  assert.deepEqual(live(), before, 'listed, not announced');
  view.setPeers([ann, bob, cy], true, ['c']);
  assert.equal(live().at(-1), 'Cy joined', 'a hello: a real arrival');
  const was = live();
  view.setPeers([ann, bob, cy], true, ['a']);
  assert.deepEqual(live(), was, 'a hello from one listed (a reload) is no news');
  view.setPeers([ann, cy], true);
  assert.equal(live().at(-1), 'Bob left');
});

test('people list: names are text, never markup', (t) => {
  const { view, row } = newView(t);
  const evil = '<img src=x onerror="alert(1)"><b>Eve</b>';
  view.setPeers([{ id: 'e', name: evil }], true);
  const [name, b] = row('e').children;
  assert.equal(name.textContent, evil);
  assert.equal(name.children.length, 0, 'no elements from the name');
  assert.equal(b.textContent, 'Call');
  view.setPeers([{ id: 'e', name: evil + '!' }], true);
  assert.equal(row('e').children[0].textContent, evil + '!');
  assert.equal(row('e').children[0].children.length, 0);
});

test('people list: Call calls the peer, only while calls are possible', (t) => {
  const { view, called, button } = newView(t);
  view.setPeers([ann, bob], false);
  button('b').click();
  assert.deepEqual(called, [], 'not while offline or in a call');
  assert.equal(button('b').getAttribute('aria-disabled'), 'true');
  view.setPeers([ann, bob], true);
  button('b').click();
  assert.deepEqual(called, ['b']);
  view.setPeers([{ id: 'b', name: 'Bobby' }, ann], true);
  button('b').click();
  assert.deepEqual(called, ['b', 'b'], 'renamed and moved, still calls the same peer');
});

test('people list: says when nobody is here', (t) => {
  const { doc, view } = newView(t);
  const empty = () => [.../** @type {any} */ (doc).body.all()].find((e) => e.getAttribute('class') === 'empty');
  view.setPeers([], true);
  assert.equal(empty().hidden, false);
  view.setPeers([ann], true);
  assert.equal(empty().hidden, true);
  view.setPeers([], true);
  assert.equal(empty().hidden, false);
});

/**
 * A call to show, as the controller makes it.
 * @param {Partial<import('../view.js').CallShow>} over
 * @returns {import('../view.js').CallShow}
 */
function show(over = {}) {
  return {
    state: 'in call', outgoing: true, reason: '', request: null, local: null, micOn: true, camOn: true,
    sharing: false, canShare: true, tiles: [], ...over,
  };
}

/** @type {Record<string, object>} one stream per person, the same object every time, as the controller's */
const streams = {};

/**
 * One person in the call. @param {string} id @param {string} name
 * @param {Partial<import('../view.js').TileInfo>} [over]
 * @returns {import('../view.js').TileInfo}
 */
function person(id, name, over = {}) {
  return { id, name, state: 'in call', remote: (streams[id] ??= { id: 'stream-' + id }), mic: true, cam: true, sharing: false, speaking: false, problem: '', ...over };
}

const SECURE = 'Signalling end-to-end encrypted';

test('call tiles: one per person, in the order given, updated in place by id and removed when gone', (t) => {
  const { view, tiles, tile } = newView(t);
  assert.equal(tiles().hidden, true, 'no call: no tiles');
  const annS = { id: 'ann-stream' }, bobS = { id: 'bob-stream' };
  view.setCall(show({ tiles: [person('a', 'Ann', { remote: annS }), person('b', 'Bob', { remote: bobS })] }), SECURE);
  const box = tiles();
  assert.equal(box.hidden, false);
  assert.equal(box.getAttribute('data-count'), '2');
  const a = tile('a'), b = tile('b');
  assert.deepEqual(box.children.map((/** @type {any} */ f) => f.getAttribute('data-peer') || f.getAttribute('class')), ['a', 'b', 'local'], 'of several, one\'s own video is the grid\'s last cell');
  for (const [f, s] of [[a, annS], [b, bobS]]) {
    assert.equal(f.tagName, 'FIGURE');
    assert.equal(f.getAttribute('class'), 'tile');
    assert.equal(f.getAttribute('data-state'), 'in call');
    const [v, cap] = f.children;
    assert.equal(v.tagName, 'VIDEO');
    assert.equal(v.getAttribute('class'), 'remote');
    assert.ok(v.hasAttribute('autoplay') && v.hasAttribute('playsinline'));
    assert.equal(v.srcObject, s);
    assert.equal(v.paused, false, 'played');
    assert.equal(cap.tagName, 'FIGCAPTION');
  }
  const va = a.children[0], vb = b.children[0];
  assert.equal(va.srcSets, 1);
  // Same people, new objects, another order, a third coming: nothing remade.
  view.setCall(show({ tiles: [person('b', 'Bob', { remote: bobS }), person('c', 'Cy', { state: 'connecting', remote: null }), person('a', 'Ann', { remote: annS })] }), SECURE);
  assert.deepEqual(box.children.map((/** @type {any} */ f) => f.getAttribute('data-peer')), ['b', 'c', 'a', null], 'the own video stays last');
  assert.equal(tile('a'), a, 'the same element');
  assert.equal(tile('b'), b);
  assert.equal(a.children[0], va, 'the same video');
  assert.equal(va.srcSets, 1, 'an unchanged stream is not set again (that would restart it)');
  assert.equal(vb.srcSets, 1);
  assert.equal(va.paused, false, 'still playing');
  assert.equal(box.getAttribute('data-count'), '3');
  assert.equal(tile('c').children[0].srcObject, null);
  // A new stream for Ann (renegotiated): set, in the same video.
  const annS2 = { id: 'ann-stream-2' };
  view.setCall(show({ tiles: [person('b', 'Bob', { remote: bobS }), person('c', 'Cy', { remote: null }), person('a', 'Ann', { remote: annS2 })] }), SECURE);
  assert.equal(a.children[0], va);
  assert.equal(va.srcObject, annS2);
  assert.equal(va.paused, false, 'and played');
  // Bob goes.
  view.setCall(show({ tiles: [person('c', 'Cy', { remote: null }), person('a', 'Ann', { remote: annS2 })] }), SECURE);
  assert.equal(tile('b'), undefined);
  assert.equal(b.parentNode, null, 'removed from the page');
  assert.equal(vb.srcObject, null, 'its stream let go');
  assert.equal(box.getAttribute('data-count'), '2');
  assert.equal(tile('a'), a);
  // One person left: their video fills the stage, one's own back in its corner.
  view.setCall(show({ tiles: [person('a', 'Ann', { remote: annS2 })] }), SECURE);
  assert.deepEqual(box.children, [a]);
  // The call ends: no tiles.
  view.setCall(show({ state: 'idle', tiles: [] }), SECURE);
  assert.equal(box.children.length, 0);
  assert.equal(box.hidden, true);
  assert.equal(box.getAttribute('data-count'), '0');
  view.setCall(null, '');
  assert.equal(box.children.length, 0);
});

test('call tiles: microphone, camera, screen, speaking and problems as attributes and words', (t) => {
  const { view, tile } = newView(t);
  view.setCall(show({ tiles: [person('a', 'Ann')] }), SECURE);
  const a = tile('a'), cap = a.children[1];
  const words = () => cap.children.slice(1).map((/** @type {any} */ e) => e.textContent);
  assert.equal(a.getAttribute('aria-label'), 'Ann');
  assert.equal(cap.textContent, 'Ann');
  assert.deepEqual(words(), []);
  for (const k of ['data-mic', 'data-cam', 'data-speaking', 'data-sharing']) assert.equal(a.hasAttribute(k), false, k);
  view.setCall(show({ tiles: [person('a', 'Ann', { mic: false, cam: false, speaking: true })] }), SECURE);
  assert.equal(tile('a'), a);
  assert.equal(a.getAttribute('data-mic'), 'off');
  assert.equal(a.getAttribute('data-cam'), 'off');
  assert.equal(a.hasAttribute('data-speaking'), true);
  assert.deepEqual(words(), ['Muted', 'Camera off']);
  assert.equal(cap.children[0].textContent, 'Ann', 'the name first');
  assert.equal(a.getAttribute('aria-label'), 'Ann, muted, camera off');
  view.setCall(show({ tiles: [person('a', 'Ann', { sharing: true, state: 'reconnecting', problem: 'Connection lost, retrying…' })] }), SECURE);
  assert.equal(a.hasAttribute('data-mic'), false, 'unmuted again');
  assert.equal(a.hasAttribute('data-cam'), false);
  assert.equal(a.hasAttribute('data-speaking'), false);
  assert.equal(a.hasAttribute('data-sharing'), true);
  assert.equal(a.getAttribute('data-state'), 'reconnecting');
  assert.deepEqual(words(), ['Sharing screen', 'Connection lost, retrying…']);
  assert.equal(a.getAttribute('aria-label'), 'Ann, sharing screen, connection lost, retrying…');
  view.setCall(show({ tiles: [person('a', 'Ann', { state: 'connecting' })] }), SECURE);
  assert.deepEqual(words(), ['Connecting…'], 'a link not up says so, when no problem says more');
  view.setCall(show({ tiles: [person('a', 'Ann')] }), SECURE);
  assert.deepEqual(words(), []);
  assert.equal(a.getAttribute('data-state'), 'in call');
});

test('call tiles: names are text, never markup', (t) => {
  const { view, tile, cls } = newView(t);
  const evil = '<img src=x onerror=alert(1)>';
  view.setCall(show({ tiles: [person('e', evil, { mic: false })] }), SECURE);
  const e = tile('e'), cap = e.children[1];
  assert.equal(cap.children[0].textContent, evil);
  assert.equal(cap.children[0].children.length, 0, 'no elements from the name');
  assert.deepEqual(cap.children.map((/** @type {any} */ c) => c.tagName), ['B', 'SMALL'], 'only the view’s own elements');
  assert.equal(e.getAttribute('aria-label'), evil + ', muted');
  assert.equal(cls('say').textContent, evil);
  assert.equal(cls('say').children.length, 0);
  view.setCall(show({ tiles: [person('e', evil + '!')] }), SECURE);
  assert.equal(tile('e'), e);
  assert.equal(cap.children[0].textContent, evil + '!');
});

test('call: what the stage says, for one person and for several', (t) => {
  const { view, root, cls } = newView(t);
  const say = () => cls('say').textContent;
  const ab = [person('a', 'Ann', { state: 'calling' }), person('b', 'Bob', { state: 'calling' })];
  view.setCall(show({ state: 'calling', tiles: ab.slice(0, 1) }), SECURE);
  assert.equal(say(), 'Calling Ann…');
  assert.equal(root.dataset.call, 'calling');
  assert.equal(root.dataset.direction, 'out');
  view.setCall(show({ state: 'calling', tiles: ab }), SECURE);
  assert.equal(say(), 'Calling Ann, Bob…');
  view.setCall(show({ state: 'connecting', tiles: ab }), SECURE);
  assert.equal(say(), 'Connecting to Ann, Bob…');
  view.setCall(show({ state: 'in call', tiles: ab }), SECURE);
  assert.equal(say(), 'Ann, Bob');
  assert.equal(cls('secure').textContent, SECURE);
  assert.equal(root.dataset.secure, 'true');
  view.setCall(show({ state: 'reconnecting', tiles: ab }), SECURE);
  assert.equal(say(), 'Reconnecting to Ann, Bob…');
  view.setCall(show({ state: 'idle', reason: 'Bob declined' }), SECURE);
  assert.equal(say(), 'Bob declined. Choose someone to call.');
  assert.equal(root.dataset.call, 'idle');
  assert.equal(cls('controls').hidden, true);
});

test('call: ringing hides the tiles until Accept; a join request keeps the call and prompts over it', (t) => {
  const { view, root, cls, tiles, called, live } = newView(t);
  const incoming = cls('incoming'), ask = cls('ask');
  const stream = { id: 'caller' };
  // Ann calls us: her stream may be attached early, but nothing of it shows.
  view.setCall(show({ state: 'ringing', outgoing: false, request: { id: 'a', name: 'Ann', join: false }, tiles: [person('a', 'Ann', { state: 'connecting', remote: stream })] }), SECURE);
  assert.equal(root.dataset.call, 'ringing');
  assert.equal(root.dataset.request, undefined);
  assert.equal(root.dataset.direction, 'in');
  assert.equal(cls('say').textContent, 'Ann is calling you');
  assert.equal(incoming.hidden, false);
  assert.equal(ask.hidden, true);
  assert.equal(tiles().hidden, true, 'the caller’s video waits for Accept');
  assert.equal(tiles().children[0].children[0].srcObject, stream, 'attached already');
  assert.equal(cls('controls').hidden, true);
  assert.equal(cls('secure').textContent, '');
  assert.equal(live().at(-1), 'Ann is calling');
  incoming.children[0].click();
  assert.deepEqual(called, ['accept']);
  view.setCall(show({ state: 'in call', outgoing: false, tiles: [person('a', 'Ann', { remote: stream })] }), SECURE);
  assert.equal(tiles().hidden, false);
  assert.equal(incoming.hidden, true);
  // Bob asks to join: the call goes on; the same two buttons, over the tiles.
  const join = show({ state: 'in call', outgoing: false, request: { id: 'b', name: 'Bob', join: true }, tiles: [person('a', 'Ann', { remote: stream })] });
  view.setCall(join, SECURE);
  assert.equal(root.dataset.call, 'in call', 'the call goes on');
  assert.equal(root.dataset.request, 'join');
  assert.equal(cls('say').textContent, 'Ann');
  assert.equal(ask.hidden, false);
  assert.equal(ask.textContent, 'Bob asks to join');
  assert.equal(incoming.hidden, false);
  assert.equal(tiles().hidden, false, 'the tiles stay in sight');
  assert.equal(cls('controls').hidden, false, 'and so do the controls');
  assert.equal(live().at(-1), 'Bob asks to join');
  const n = live().length;
  view.setCall(join, SECURE);
  assert.equal(live().length, n, 'asked once, said once');
  incoming.children[1].click();
  assert.deepEqual(called, ['accept', 'decline']);
  view.setCall(show({ state: 'in call', outgoing: false, tiles: [person('a', 'Ann', { remote: stream })] }), SECURE);
  assert.equal(root.dataset.request, undefined);
  assert.equal(ask.hidden, true);
  assert.equal(incoming.hidden, true);
});

test('call: the Share screen button', (t) => {
  const { view, cls, called } = newView(t);
  const share = cls('share');
  assert.equal(share.hidden, true, 'no call');
  const controls = cls('controls').children.map((/** @type {any} */ e) => e.getAttribute('class'));
  assert.deepEqual(controls.slice(0, 4), ['mic', 'cam', 'share', 'hangup'], 'next to the camera');
  view.setCall(show({ tiles: [person('a', 'Ann')] }), SECURE);
  assert.equal(share.hidden, false);
  assert.equal(share.textContent, 'Share screen');
  assert.equal(share.getAttribute('aria-pressed'), 'false');
  share.click();
  assert.deepEqual(called, ['share']);
  view.setCall(show({ sharing: true, tiles: [person('a', 'Ann')] }), SECURE);
  assert.equal(share.textContent, 'Stop sharing');
  assert.equal(share.getAttribute('aria-pressed'), 'true');
  view.setCall(show({ canShare: false, tiles: [person('a', 'Ann')] }), SECURE);
  assert.equal(share.hidden, true, 'a browser that cannot share shows no button');
  assert.equal(share.getAttribute('aria-pressed'), 'false');
});

test('call: who joins, leaves or asks is said once, in words', (t) => {
  const { view, live } = newView(t);
  const said = () => live().at(-1);
  const A = person('a', 'Ann'), B = person('b', 'Bob'), C = person('c', 'Cy');
  view.setCall(show({ state: 'calling', tiles: [{ ...A, state: 'calling' }, { ...B, state: 'calling' }] }), SECURE);
  assert.equal(said(), 'Calling Ann, Bob');
  view.setCall(show({ state: 'in call', tiles: [A, { ...B, state: 'connecting' }] }), SECURE);
  assert.equal(said(), 'Call with Ann, Bob connected', 'the call coming up is no one joining');
  view.setCall(show({ state: 'in call', tiles: [A, B] }), SECURE);
  assert.equal(said(), 'Bob joined the call', 'Bob’s link came up later');
  let was = live();
  view.setCall(show({ state: 'in call', tiles: [A, B] }), SECURE);
  view.setCall(show({ state: 'in call', tiles: [{ ...A, mic: false }, B] }), SECURE);
  assert.deepEqual(live(), was, 'nothing new: nothing said');
  view.setCall(show({ state: 'in call', tiles: [A, B, C] }), SECURE);
  assert.equal(said(), 'Cy joined the call', 'a tile added while in call');
  view.setCall(show({ state: 'in call', tiles: [A, C, { ...person('d', 'Di'), state: 'calling' }] }), SECURE);
  assert.equal(said(), 'Bob left the call', 'Di only called, not joined yet');
  view.setCall(show({ state: 'in call', tiles: [A, C, { ...person('d', 'Di'), state: 'reconnecting', problem: 'Connection lost, retrying…' }] }), SECURE);
  view.setCall(show({ state: 'in call', tiles: [A, C] }), SECURE);
  assert.equal(said(), 'Bob left the call', 'Di never joined: her going is not said as leaving');
  view.setCall(show({ state: 'reconnecting', tiles: [{ ...A, state: 'reconnecting' }, C] }), SECURE);
  assert.equal(said(), 'Call interrupted, reconnecting');
  view.setCall(show({ state: 'in call', tiles: [A, C] }), SECURE);
  assert.equal(said(), 'Call reconnected', 'Ann coming back is no news of her');
  view.setCall(show({ state: 'in call', request: { id: 'e', name: 'Eve', join: true }, tiles: [A] }), SECURE);
  assert.equal(said(), 'Cy left the call. Eve asks to join', 'changes at once: one announcement');
  view.setCall(show({ state: 'idle', reason: '' }), SECURE);
  assert.equal(said(), 'Call ended', 'the end of the call, not everyone leaving');
  // A new call: the first one's people are not remembered as joined.
  view.setCall(show({ state: 'calling', tiles: [{ ...A, state: 'calling' }] }), SECURE);
  view.setCall(show({ state: 'connecting', tiles: [{ ...A, state: 'connecting' }] }), SECURE);
  view.setCall(show({ state: 'in call', tiles: [A] }), SECURE);
  assert.equal(said(), 'Call with Ann connected');
});

test('call: a video the browser will not play shows the start button; a gesture plays them all', async (t) => {
  const { doc, view, cls, tile } = newView(t);
  const start = cls('start');
  const settle = () => new Promise((ok) => setTimeout(ok));
  doc.canPlay = false;
  view.setCall(show({ state: 'ringing', outgoing: false, request: { id: 'a', name: 'Ann', join: false }, tiles: [person('a', 'Ann', { state: 'connecting' })] }), SECURE);
  await settle();
  const va = tile('a').children[0];
  assert.equal(va.paused, true, 'refused');
  assert.equal(start.hidden, true, 'never while ringing: the Accept button must hold still');
  view.setCall(show({ state: 'in call', outgoing: false, tiles: [person('a', 'Ann'), person('b', 'Bob')] }), SECURE);
  await settle();
  const vb = tile('b').children[0];
  assert.equal(start.hidden, false, 'refused in the call: the button invites a click');
  doc.canPlay = true;
  start.click();
  await settle();
  assert.equal(va.paused, false);
  assert.equal(vb.paused, false, 'every video played');
  assert.equal(start.hidden, true);
  // The browser pauses one (a device change, a lost output): it plays again.
  const plays = vb.plays;
  vb.pause();
  await settle();
  assert.equal(vb.plays, plays + 1);
  assert.equal(vb.paused, false);
  // Refused again, then the person's tile goes: the button goes with it.
  doc.canPlay = false;
  vb.pause();
  await settle();
  assert.equal(start.hidden, false);
  view.setCall(show({ state: 'in call', outgoing: false, tiles: [person('a', 'Ann')] }), SECURE);
  await settle();
  assert.equal(start.hidden, true, 'only Ann’s video, which plays');
  view.setCall(show({ state: 'in call', outgoing: false, tiles: [person('a', 'Ann'), person('c', 'Cy', { remote: null })] }), SECURE);
  await settle();
  assert.equal(start.hidden, true, 'a tile without a stream has nothing to play');
});

test('call: the own video stays, small, beside the tiles', (t) => {
  const { view, find } = newView(t);
  const local = find((e) => e.getAttribute('class') === 'local')[0];
  assert.equal(local.hidden, true);
  const mine = { id: 'mine' };
  view.setCall(show({ local: mine, tiles: [person('a', 'Ann')] }), SECURE);
  assert.equal(local.srcObject, mine);
  assert.equal(local.hidden, false);
  assert.equal(local.muted, true);
  assert.equal(find((e) => e.tagName === 'VIDEO' && e.getAttribute('class') === 'remote').length, 1);
  view.setCall(show({ state: 'idle' }), SECURE);
  assert.equal(local.hidden, true);
});

test('people list during a call: Add those not in it, "In call" for those in it', (t) => {
  const { doc, view, called, button, list } = newView(t);
  view.setPeers([ann, bob, cy], true);
  const b = button('b');
  b.focus();
  view.setPeers([ann, bob, cy], true, [], new Set(['a']));
  assert.deepEqual(list(), ['a:AnnIn call', 'b:BobAdd', 'c:CyAdd']);
  assert.equal(doc.activeElement, b, 'the focus stays');
  assert.equal(button('b'), b, 'the same button');
  assert.equal(button('a').getAttribute('aria-disabled'), 'true');
  assert.equal(b.getAttribute('aria-disabled'), 'false');
  button('a').click();
  assert.deepEqual(called, [], 'Ann is in the call already');
  b.click();
  assert.deepEqual(called, ['b'], 'Add calls Bob into the call');
  view.setPeers([ann, bob, cy], true, [], new Set(['a', 'b']));
  assert.deepEqual(list(), ['a:AnnIn call', 'b:BobIn call', 'c:CyAdd']);
  assert.equal(doc.activeElement, b, 'aria-disabled, not disabled: the focus stays');
  b.click();
  assert.deepEqual(called, ['b']);
  view.setPeers([ann, bob, cy], false, [], new Set(['a']));
  assert.equal(b.getAttribute('aria-disabled'), 'true', 'no one can be added now');
  b.click();
  assert.deepEqual(called, ['b']);
  view.setPeers([ann, bob, cy], true);
  assert.deepEqual(list(), ['a:AnnCall', 'b:BobCall', 'c:CyCall'], 'the call over');
  assert.equal(button('a').getAttribute('aria-disabled'), 'false');
  button('a').click();
  assert.deepEqual(called, ['b', 'a']);
});

test('call tiles: of several, each shows its pair\'s safety code', (t) => {
  const { view, tile } = newView(t);
  view.setCall(show({ tiles: [person('a', 'Ann', { code: '11 22 33 44 55 66' }), person('b', 'Bob', { code: '' })] }), SECURE);
  const k = tile('a').children.find((/** @type {any} */ c) => c.getAttribute('class') === 'code');
  assert.equal(k.textContent, '11 22 33 44 55 66');
  assert.equal(k.hidden, false);
  assert.match(tile('a').getAttribute('aria-label'), /safety code 11 22 33 44 55 66$/);
  assert.equal(tile('b').children.find((/** @type {any} */ c) => c.getAttribute('class') === 'code').hidden, true, 'no code: nothing shown');
});

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
});

/** Actions that record the calls asked for. */
function recordingActions() {
  /** @type {string[]} */
  const called = [];
  const nop = () => {};
  return {
    called,
    act: { call: (/** @type {string} */ id) => called.push(id), accept: nop, decline: nop, hangup: nop, mic: nop, camera: nop, name: nop, device: nop, reconnect: nop, preview: nop },
  };
}

/** A view on a fresh fake document, and ways to look at it as a person (or the e2e tests) would. @param {any} t */
function newView(t) {
  const { doc, root } = installDom(t);
  const { act, called } = recordingActions();
  const view = new View(/** @type {any} */ (root), act);
  const find = (/** @type {(e: any) => boolean} */ f) => [...root.all()].filter(f);
  const row = (/** @type {string} */ id) => find((e) => e.getAttribute('data-peer') === id)[0];
  const button = (/** @type {string} */ id) => row(id)?.children.find((e) => e.tagName === 'BUTTON');
  const live = () => find((e) => e.getAttribute('aria-live'))[0].children.map((p) => p.textContent);
  const list = () => find((e) => e.tagName === 'UL')[0].children.map((li) => li.getAttribute('data-peer') + ':' + li.textContent);
  return { doc, view, called, row, button, live, list };
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

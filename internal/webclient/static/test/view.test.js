import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ringer, callNews, connNews, peerNews } from '../view.js';

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
  assert.deepEqual(peerNews(new Map([['a', 'Ann'], ['b', 'Bob']]), [{ id: 'b', name: 'Bob' }, { id: 'c', name: 'Cy' }]), ['Cy joined', 'Ann left']);
  assert.deepEqual(peerNews(new Map(), []), []);
});

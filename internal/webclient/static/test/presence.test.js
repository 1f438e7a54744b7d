import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Presence, Answers, cleanName, EXPIRE_MS, ANSWER_GAP_MS, HELLO_REPEAT_MS } from '../presence.js';

test('presence bookkeeping', async (t) => {
  let now = 1000;
  const p = new Presence('me', () => now);
  const steps = [
    { name: 'own echo ignored', from: 'me', a: { t: 'available', hello: true }, want: { added: false, answer: false }, peers: [] },
    { name: 'newcomer hello is answered', from: 'b', a: { t: 'available', name: 'Bob', hello: true, inst: '1' }, want: { added: true, answer: true }, peers: ['Bob'] },
    { name: 'heartbeat of known peer not answered', from: 'b', a: { t: 'available', name: 'Bob', inst: '1' }, want: { added: false, changed: false, answer: false }, peers: ['Bob'] },
    // A member answering a hello is unknown to the newcomer: answering it back would cost one more broadcast per join.
    { name: 'announcement of unknown peer adds, not answered', from: 'c', a: { t: 'available', name: 'Cy', inst: '1' }, want: { added: true, answer: false }, peers: ['Bob', 'Cy'] },
    { name: 'rename', from: 'c', a: { t: 'available', name: 'Abe', inst: '1' }, want: { changed: true, answer: false }, peers: ['Abe', 'Bob'] },
    { name: 'hello repeated at once not answered', from: 'b', a: { t: 'available', name: 'Bob', inst: '1', hello: true }, want: { restarted: false, answer: false }, peers: ['Abe', 'Bob'] },
    { name: 'reconnect hello answered', wait: HELLO_REPEAT_MS, from: 'b', a: { t: 'available', name: 'Bob', inst: '1', hello: true }, want: { restarted: false, answer: true }, peers: ['Abe', 'Bob'] },
    { name: 'reload is a restart', wait: HELLO_REPEAT_MS, from: 'b', a: { t: 'available', name: 'Bob', inst: '2', hello: true }, want: { restarted: true, answer: true }, peers: ['Abe', 'Bob'] },
    // Leaving and saying hello again, or a new inst each time, buys no extra answers.
    { name: 'leave', from: 'b', a: { t: 'unavailable' }, want: { changed: true }, peers: ['Abe'] },
    { name: 'hello soon after leaving not answered', from: 'b', a: { t: 'available', name: 'Bob', inst: '3', hello: true }, want: { added: true, answer: false }, peers: ['Abe', 'Bob'] },
    // The old direct answer: mod_verto relays direct messages from anyone, so it never lets a peer in.
    { name: 'here ignored', from: 'd', a: { t: 'here', name: 'Dee' }, want: { added: false, answer: false }, peers: ['Abe', 'Bob'] },
    { name: 'unavailable removes', from: 'c', a: { t: 'unavailable' }, want: { changed: true }, peers: ['Bob'] },
    { name: 'unknown type ignored', from: 'e', a: { t: 'offer' }, want: { added: false }, peers: ['Bob'] },
    { name: 'garbage ignored', from: 'e', a: /** @type {any} */ ('x'), want: { added: false }, peers: ['Bob'] },
  ];
  for (const s of steps) {
    await t.test(s.name, () => {
      now += s.wait || 0;
      const out = p.take(s.from, s.a);
      for (const [k, v] of Object.entries(s.want)) assert.equal(out[/** @type {keyof typeof out} */ (k)], v, k);
      assert.deepEqual(p.list().map((x) => x.name), s.peers);
    });
  }
  await t.test('silent peers expire', () => {
    p.take('d', { t: 'available', name: 'Dee' });
    now += EXPIRE_MS - 10;
    assert.ok(p.admit('d'), 'a direct message from a member counts as heard from');
    now += 20;
    assert.deepEqual(p.sweep(), ['b']);
    assert.deepEqual(p.list().map((x) => x.id), ['d']);
  });
});

test('direct messages only from peers seen on the channel', () => {
  const p = new Presence('me');
  // An outsider who knows our id sends the old direct answer, then an offer:
  // the receiver takes a direct message only when admit finds the sender.
  assert.equal(p.take('x', { t: 'here', name: 'Mallory' }).added, false);
  assert.equal(p.admit('x'), undefined, 'offer from an outsider ignored');
  assert.deepEqual(p.list(), []);
  p.take('b', { t: 'available', name: 'Bob', hello: true });
  assert.equal(p.admit('b')?.name, 'Bob', 'a member on the channel may call');
  p.take('b', { t: 'unavailable' });
  assert.equal(p.admit('b'), undefined, 'not after leaving');
});

/** Timers run by hand. */
class Clock {
  constructor() { this.now = 0; this.seq = 0; /** @type {Map<number, {at: number, f: () => void}>} */ this.jobs = new Map(); }
  set = (/** @type {() => void} */ f, /** @type {number} */ ms) => { const id = ++this.seq; this.jobs.set(id, { at: this.now + ms, f }); return id; };
  clear = (/** @type {any} */ id) => { this.jobs.delete(id); };
  /** @param {number} ms */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.jobs.entries()].filter(([, j]) => j.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.jobs.delete(due[0]);
      this.now = due[1].at;
      due[1].f();
    }
    this.now = end;
  }
}

test('hello answers: one broadcast per window, delay bounded by the channel size', async (t) => {
  await t.test('many hellos, one answer per window', () => {
    const c = new Clock();
    /** @type {number[]} */
    const sent = [];
    const a = new Answers(() => sent.push(c.now), c, () => c.now, () => 0.999);
    // A member spams 10 hellos a second (the hub's budget) for 30 s.
    for (let i = 0; i < 300; i++) {
      a.want(1000);
      c.advance(100);
    }
    c.advance(10000);
    assert.ok(sent.length <= 30000 / ANSWER_GAP_MS + 1, `${sent.length} answers to 300 hellos`);
    assert.ok(sent.length >= 30000 / ANSWER_GAP_MS - 1, `hellos keep being answered (${sent.length})`);
    for (let i = 1; i < sent.length; i++) assert.ok(sent[i] - sent[i - 1] >= ANSWER_GAP_MS, 'answers 3 s apart');
    assert.ok(sent[0] <= 2000, 'first answer within 2 s');
  });
  await t.test('delay: up to 20 ms per known peer, at most 2 s', () => {
    for (const [peers, r, want] of [[1, 0.5, 10], [10, 0.999, 199.8], [50, 0.5, 500], [5000, 0.999, 1998], [5000, 0, 0]]) {
      const c = new Clock();
      /** @type {number[]} */
      const sent = [];
      const a = new Answers(() => sent.push(c.now), c, () => c.now, () => r);
      a.want(peers);
      a.want(peers);
      c.advance(5000);
      assert.deepEqual(sent, [want], `${peers} peers, random ${r}`);
    }
  });
  await t.test('our own announcement answers pending hellos', () => {
    const c = new Clock();
    let n = 0;
    const a = new Answers(() => n++, c, () => c.now, () => 0.5);
    a.want(100);
    a.drop();
    c.advance(5000);
    assert.equal(n, 0);
    a.want(100); // a later hello is answered again
    c.advance(5000);
    assert.equal(n, 1);
  });
});

test('cleanName', () => {
  assert.equal(cleanName('  Zoë \u0007 ', 'abcdef'), 'Zoë');
  assert.equal(cleanName('', 'abcdef'), 'Guest abcd');
  assert.equal(cleanName(null, 'abcdef'), 'Guest abcd');
  assert.equal(cleanName('<b>x</b>', 'a'), '<b>x</b>');
  assert.equal(cleanName('x'.repeat(100), 'a').length, 40);
});

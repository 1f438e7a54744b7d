import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Presence, Answers, cleanName, BANS, EXPIRE_MS, ANSWER_GAP_MS, ANSWER_BURST, PAGE_BURST, PAGE_GAP_MS } from '../presence.js';

test('presence bookkeeping', async (t) => {
  let now = 1000;
  const p = new Presence('me', () => now);
  const steps = [
    { name: 'own echo ignored', from: 'me', a: { t: 'available', hello: true }, want: { added: false, answer: false }, peers: [] },
    { name: 'newcomer hello is answered', from: 'b', a: { t: 'available', name: 'Bob', hello: true, inst: '1' }, want: { added: true, answer: true }, peers: ['Bob'] },
    { name: 'heartbeat of known peer not answered', from: 'b', a: { t: 'available', name: 'Bob', inst: '1' }, want: { added: false, changed: false, answer: false }, peers: ['Bob'] },
    { name: 'announcement of unknown peer adds, not answered', from: 'c', a: { t: 'available', name: 'Cy', inst: '1' }, want: { added: true, answer: false }, peers: ['Bob', 'Cy'] },
    { name: 'rename', from: 'c', a: { t: 'available', name: 'Abe', inst: '1' }, want: { changed: true, answer: false }, peers: ['Abe', 'Bob'] },
    // Every hello wants an answer (a reconnecting page lost what it missed); Answers paces them.
    { name: 'hello repeated is answered again', from: 'b', a: { t: 'available', name: 'Bob', inst: '1', hello: true }, want: { restarted: false, answer: true }, peers: ['Abe', 'Bob'] },
    { name: 'reload is a restart', from: 'b', a: { t: 'available', name: 'Bob', inst: '2', hello: true }, want: { restarted: true, answer: true }, peers: ['Abe', 'Bob'] },
    { name: 'leave', from: 'b', a: { t: 'unavailable' }, want: { changed: true, left: true }, peers: ['Abe'] },
    { name: 'leave of someone not listed', from: 'b', a: { t: 'unavailable' }, want: { changed: false, left: false }, peers: ['Abe'] },
    { name: 'hello after leaving answered', from: 'b', a: { t: 'available', name: 'Bob', inst: '3', hello: true }, want: { added: true, answer: true }, peers: ['Abe', 'Bob'] },
    // "here" counts only as a direct message, which the relay vouches for.
    { name: 'here on the channel ignored', from: 'd', a: { t: 'here', name: 'Dee' }, want: { added: false, answer: false }, peers: ['Abe', 'Bob'] },
    { name: 'here directly lets in, never answered', direct: true, from: 'd', a: { t: 'here', name: 'Dee', inst: '1', hello: true }, want: { added: true, answer: false }, peers: ['Abe', 'Bob', 'Dee'] },
    { name: 'available directly ignored', direct: true, from: 'e', a: { t: 'available', name: 'Eve' }, want: { added: false }, peers: ['Abe', 'Bob', 'Dee'] },
    { name: 'unavailable removes', from: 'c', a: { t: 'unavailable' }, want: { changed: true }, peers: ['Bob', 'Dee'] },
    { name: 'unavailable directly removes its sender', direct: true, from: 'b', a: { t: 'unavailable' }, want: { changed: true, left: true }, peers: ['Dee'] },
    { name: 'back', from: 'b', a: { t: 'available', name: 'Bob', inst: '4' }, want: { added: true }, peers: ['Bob', 'Dee'] },
    { name: 'unknown type ignored', from: 'e', a: { t: 'offer' }, want: { added: false }, peers: ['Bob', 'Dee'] },
    { name: 'garbage ignored', from: 'e', a: /** @type {any} */ ('x'), want: { added: false }, peers: ['Bob', 'Dee'] },
  ];
  for (const s of steps) {
    await t.test(s.name, () => {
      const out = p.take(s.from, s.a, !!s.direct);
      for (const [k, v] of Object.entries(s.want)) assert.equal(out[/** @type {keyof typeof out} */ (k)], v, k);
      assert.deepEqual(p.list().map((x) => x.name), s.peers);
    });
  }
  await t.test('silent peers expire', () => {
    p.take('f', { t: 'available', name: 'Fay' });
    now += EXPIRE_MS - 10;
    assert.ok(p.admit('f'), 'a direct message from a member counts as heard from');
    now += 20;
    assert.deepEqual(p.sweep().sort(), ['b', 'd']);
    assert.deepEqual(p.list().map((x) => x.id), ['f']);
  });
  await t.test('after a reconnect, those not heard from again are forgotten', () => {
    p.take('g', { t: 'available', name: 'Gus' });
    now += 10;
    const hello = now;
    now += 10;
    p.take('f', { t: 'here', name: 'Fay' }, true);
    now += 4000;
    assert.deepEqual(p.forgetBefore(hello), ['g']);
    assert.deepEqual(p.list().map((x) => x.id), ['f']);
  });
});

test('keys and instance ids are bounded', () => {
  const p = new Presence('me');
  p.take('b', { t: 'here', name: 'Bob', key: 'k'.repeat(40000), inst: 'i'.repeat(8000) }, true);
  assert.equal(p.get('b')?.key, '', 'no P-256 key is that long');
  assert.equal(p.get('b')?.inst.length, 64);
  p.take('b', { t: 'available', name: 'Bob', key: 'k'.repeat(88), inst: 'x' });
  assert.equal(p.get('b')?.key.length, 88);
});

test('direct messages only from peers seen on the channel or answering', () => {
  const p = new Presence('me');
  // An outsider who knows our id sends an offer: the receiver takes a
  // direct message only when admit finds the sender.
  assert.equal(p.admit('x'), undefined, 'offer from an outsider ignored');
  assert.deepEqual(p.list(), []);
  p.take('b', { t: 'available', name: 'Bob', hello: true });
  assert.equal(p.admit('b')?.name, 'Bob', 'a member on the channel may call');
  p.take('b', { t: 'unavailable' });
  assert.equal(p.admit('b'), undefined, 'not after leaving');
});

test('a banned peer leaves the list and is never let in again; bans are bounded', () => {
  const p = new Presence('me');
  p.take('b', { t: 'available', name: 'Bob' });
  p.take('c', { t: 'available', name: 'Cy' });
  assert.equal(p.ban('b'), true, 'was listed');
  assert.deepEqual(p.list().map((x) => x.id), ['c']);
  assert.equal(p.admit('b'), undefined, 'no direct message from a banned peer');
  for (const [a, direct] of /** @type {const} */ ([[{ t: 'available', name: 'Bob', hello: true }, false], [{ t: 'here', name: 'Bob' }, true]])) {
    const out = p.take('b', a, direct);
    assert.deepEqual(out, { added: false, changed: false, restarted: false, answer: false, left: false }, JSON.stringify(a));
  }
  assert.deepEqual(p.list().map((x) => x.id), ['c']);
  assert.equal(p.ban('x'), false, 'banned before ever listed');
  assert.equal(p.take('x', { t: 'available', name: 'X' }).added, false);
  // The oldest bans go first once BANS are kept.
  for (let i = 0; i < BANS - 2; i++) p.ban('n' + i); // with b and x: BANS
  assert.equal(p.banned.size, BANS);
  assert.equal(p.take('b', { t: 'available', name: 'Bob' }).added, false, 'b still banned');
  p.ban('one more');
  assert.equal(p.banned.size, BANS);
  assert.equal(p.take('b', { t: 'available', name: 'Bob' }).added, true, 'the oldest ban, b, went');
  assert.equal(p.take('x', { t: 'available', name: 'X' }).added, false, 'x is kept');
});

test('a ban lifted: the next announcement lists the peer again, an answer lets it in', () => {
  const p = new Presence('me');
  p.take('b', { t: 'available', name: 'Bob' });
  p.ban('b');
  p.ban('c');
  p.unban('b');
  p.unban('c');
  p.unban('never banned');
  assert.equal(p.banned.size, 0);
  assert.equal(p.admit('b'), undefined, 'not listed until it says so');
  assert.equal(p.take('b', { t: 'available', name: 'Bob', hello: true }).answer, true);
  assert.equal(p.take('c', { t: 'here', name: 'Cy' }, true).added, true);
  assert.deepEqual(p.list().map((x) => x.id), ['b', 'c']);
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

test('hello answers: direct, at once, then one per peer per gap', async (t) => {
  await t.test('newcomers are answered at once', () => {
    const c = new Clock();
    /** @type {[string, number][]} */
    const sent = [];
    const a = new Answers((peer) => sent.push([peer, c.now]), c, () => c.now);
    a.want('b');
    a.want('c');
    assert.deepEqual(sent, [['b', 0], ['c', 0]]);
  });
  await t.test('quick reloads are answered at once', () => {
    const c = new Clock();
    /** @type {number[]} */
    const sent = [];
    const a = new Answers(() => sent.push(c.now), c, () => c.now);
    for (let i = 0; i < ANSWER_BURST; i++) {
      a.want('b');
      c.advance(300);
    }
    assert.deepEqual(sent, [0, 300, 600]);
  });
  await t.test('a peer repeating hellos gets one answer per gap', () => {
    const c = new Clock();
    /** @type {number[]} */
    const sent = [];
    const a = new Answers(() => sent.push(c.now), c, () => c.now);
    // A member sends 10 hellos a second for 30 s.
    for (let i = 0; i < 300; i++) {
      a.want('b');
      c.advance(100);
    }
    c.advance(10000);
    assert.ok(sent.length <= 30000 / ANSWER_GAP_MS + ANSWER_BURST + 1, `${sent.length} answers to 300 hellos`);
    assert.ok(sent.length >= 30000 / ANSWER_GAP_MS - 1, `hellos keep being answered (${sent.length})`);
    const late = sent.filter((at) => at >= 5000);
    for (let i = 1; i < late.length; i++) assert.ok(late[i] - late[i - 1] >= ANSWER_GAP_MS - 1, 'then answers a gap apart');
  });
  await t.test('a hello past the budget is answered when it allows, not lost', () => {
    const c = new Clock();
    /** @type {number[]} */
    const sent = [];
    const a = new Answers(() => sent.push(c.now), c, () => c.now);
    for (let i = 0; i <= ANSWER_BURST; i++) a.want('b');
    c.advance(5000);
    assert.deepEqual(sent, [0, 0, 0, ANSWER_GAP_MS]);
  });
  await t.test('a peer that left, or going offline, cancels waiting answers', () => {
    const c = new Clock();
    /** @type {string[]} */
    const sent = [];
    const a = new Answers((p) => sent.push(p), c, () => c.now);
    for (let i = 0; i <= ANSWER_BURST; i++) {
      a.want('b');
      a.want('c');
    }
    a.forget('b');
    c.advance(ANSWER_GAP_MS + 1); // c's fourth answer is due and sent; b's is not
    assert.deepEqual(sent, ['b', 'c', 'b', 'c', 'b', 'c', 'c']);
    a.want('b');
    a.want('b');
    c.advance(1);
    a.want('b'); // a fifth hello past b's budget waits...
    a.drop(); // ... and we go offline
    c.advance(5000);
    assert.deepEqual(sent, ['b', 'c', 'b', 'c', 'b', 'c', 'c', 'b']);
  });
  await t.test('the page answers PAGE_BURST at once, then one per PAGE_GAP_MS, first come first answered', () => {
    const c = new Clock();
    /** @type {[string, number][]} */
    const sent = [];
    const a = new Answers((p) => sent.push([p, c.now]), c, () => c.now);
    // 60 identities say hello at once, then again every 100 ms for 10 s.
    for (let round = 0; round < 100; round++) {
      for (let i = 0; i < 60; i++) a.want('id' + i);
      c.advance(100);
    }
    assert.ok(sent.length <= PAGE_BURST + 10000 / PAGE_GAP_MS + 1, `${sent.length} answers in 10 s`);
    assert.ok(sent.length >= 10000 / PAGE_GAP_MS, `answers keep coming (${sent.length})`);
    assert.equal(new Set(sent.map(([p]) => p)).size, 60, 'everyone is answered in turn');
    assert.ok(a.pending.size <= 60);
  });
  await t.test('memory: budgets of peers answered long ago are forgotten', () => {
    const c = new Clock();
    const a = new Answers(() => {}, c, () => c.now);
    for (let i = 0; i < 2000; i++) {
      a.want('p' + i);
      c.advance(250);
    }
    assert.ok(a.budget.size <= 300, `${a.budget.size} budgets kept`);
    assert.equal(a.pending.size, 0);
  });
});

test('cleanName', () => {
  assert.equal(cleanName('  Zoë \u0007 ', 'abcdef'), 'Zoë');
  assert.equal(cleanName('', 'abcdef'), 'Guest abcd');
  assert.equal(cleanName(null, 'abcdef'), 'Guest abcd');
  assert.equal(cleanName('<b>x</b>', 'a'), '<b>x</b>');
  assert.equal(cleanName('x'.repeat(100), 'a').length, 40);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Verto, Requests, backoff, keepaliveDelay, replyError, VertoError, keptSessid } from '../verto.js';

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

/** A WebSocket stand-in recording what the client sends. */
class FakeSocket {
  /** @type {FakeSocket[]} */
  static all = [];
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    /** @type {any[]} */
    this.sent = [];
    /** @type {any} */ this.onopen = null;
    /** @type {any} */ this.onmessage = null;
    /** @type {any} */ this.onclose = null;
    /** @type {any} */ this.onerror = null;
    FakeSocket.all.push(this);
  }
  open() { this.readyState = 1; this.onopen?.(); }
  /** @param {string} s */
  send(s) { this.sent.push(JSON.parse(s)); }
  close() { if (this.readyState === 3) return; this.readyState = 3; this.onclose?.(); }
  /** The server closes the socket with a close code. @param {number} code */
  closedBy(code) { this.readyState = 3; this.onclose?.({ code, reason: '' }); }
  /** @param {any} m */
  recv(m) { this.onmessage?.({ data: JSON.stringify(m) }); }
  last() { return this.sent[this.sent.length - 1]; }
}

const flush = () => new Promise((r) => setImmediate(r));

function setup() {
  FakeSocket.all = [];
  const clock = new Clock();
  /** @type {string[]} */
  const states = [];
  /** @type {any[]} */
  const events = [];
  let ready = 0;
  const v = new Verto({
    url: 'ws://x/verto', login: 'A', passwd: 'pw', sessid: 'S', WebSocket: FakeSocket, timers: clock, random: () => 0.5,
    onState: (s) => states.push(s), onReady: () => ready++, onEvent: (p) => events.push(['event', p]), onInfo: (p) => events.push(['info', p]),
  });
  return { v, clock, states, events, ready: () => ready, ws: () => FakeSocket.all[FakeSocket.all.length - 1] };
}

/** Opens the socket and answers the login. @param {FakeSocket} ws */
async function logIn(ws) {
  ws.open();
  const login = ws.last();
  ws.recv({ jsonrpc: '2.0', id: login.id, result: { message: 'logged in', sessid: 'A' } });
  await flush();
  ws.recv({ jsonrpc: '2.0', id: 1, method: 'verto.clientReady', params: { reattached_sessions: [] } });
  return login;
}

test('backoff: at once, then +5 s per try up to 30 s, jittered', () => {
  assert.ok(backoff(0, 0.99) < 250);
  const mid = [1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoff(n, 0.5));
  assert.deepEqual(mid, [5000, 10000, 15000, 20000, 25000, 30000, 30000, 30000]);
  for (let n = 1; n < 10; n++) {
    const lo = backoff(n, 0);
    const hi = backoff(n, 0.999);
    assert.ok(lo < hi || hi === 30000, `jitter at ${n}`);
    assert.ok(hi <= 30000 && lo >= 0.8 * Math.min(5000 * n, 30000));
  }
  assert.ok(keepaliveDelay(0) >= 40000 && keepaliveDelay(0.999) <= 50000);
});

test('replyError finds errors in error and inside result', () => {
  assert.equal(replyError({ id: 1, result: { message: 'SENT' } }), null);
  const e1 = replyError({ id: 1, error: { code: -32000, message: 'Authentication Required' } });
  assert.equal(e1?.code, -32000);
  const e2 = replyError({ id: 15, result: { code: -32002, message: 'Permission Denied.', sessid: 's' } });
  assert.equal(e2?.code, -32002);
  assert.equal(e2?.message, 'Permission Denied.');
  const e3 = replyError({ id: 9, error: { unauthorizedChannels: ['x'] } });
  assert.ok(e3 instanceof VertoError);
});

test('request bookkeeping: ids, results, errors, expiry, failAll', async () => {
  const clock = new Clock();
  const r = new Requests(clock);
  const a = r.add('echo', 1000);
  const b = r.add('verto.broadcast', 1000);
  const c = r.add('verto.info', 1000);
  const d = r.add('verto.subscribe', 5000);
  assert.deepEqual([a.id, b.id, c.id, d.id], [1, 2, 3, 4]);
  assert.ok(r.settle({ id: 1, result: { ok: 1 } }));
  assert.deepEqual(await a.promise, { ok: 1 });
  assert.ok(r.settle({ id: 2, result: { code: -32002, message: 'Permission Denied.' } }));
  await assert.rejects(b.promise, /Permission Denied/);
  assert.equal(r.settle({ id: 2, result: {} }), false, 'settled twice');
  assert.equal(r.settle({ id: 99, result: {} }), false, 'unknown id');
  clock.advance(1001);
  await assert.rejects(c.promise, /timed out/);
  assert.equal(r.pending.size, 1);
  r.failAll(new Error('gone'));
  await assert.rejects(d.promise, /gone/);
  assert.equal(r.pending.size, 0);
  assert.equal(clock.jobs.size, 0, 'timers cleared');
});

test('logs in on open with the given sessid, ready on clientReady', async () => {
  const s = setup();
  s.v.start();
  assert.deepEqual(s.states, ['connecting']);
  const login = await logIn(s.ws());
  assert.equal(login.method, 'login');
  assert.deepEqual(login.params, { login: 'A', passwd: 'pw', sessid: 'S' });
  assert.equal(login.jsonrpc, '2.0');
  assert.equal(s.ready(), 1);
  assert.deepEqual(s.states, ['connecting', 'ready']);
  const p = s.v.broadcast('chan', 'ZGF0YQ==');
  const b = s.ws().last();
  assert.deepEqual(b.params, { eventChannel: 'chan', eventData: 'ZGF0YQ==', localBroadcast: true, sessid: 'S' });
  s.ws().recv({ jsonrpc: '2.0', id: b.id, result: { sessid: 'A' } });
  await p;
});

/** A localStorage stand-in. @param {boolean} [broken] throws like storage that is off */
function storage(broken) {
  const m = new Map();
  return {
    m,
    getItem: (/** @type {string} */ k) => { if (broken) throw new Error('off'); return m.get(k) ?? null; },
    setItem: (/** @type {string} */ k, /** @type {string} */ v) => { if (broken) throw new Error('off'); m.set(k, v); },
  };
}

test('sessid: random, never the client id, kept per channel across reloads', () => {
  const st = storage();
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const a1 = keptSessid(st, 'channels.sessid.chan-a');
  assert.match(a1, uuid);
  assert.equal(keptSessid(st, 'channels.sessid.chan-a'), a1, 'a reload (or second tab) reattaches');
  const b1 = keptSessid(st, 'channels.sessid.chan-b');
  assert.notEqual(b1, a1, 'another channel, another session');
  st.m.set('channels.sessid.chan-c', 'client-id-1');
  assert.notEqual(keptSessid(st, 'channels.sessid.chan-c'), 'client-id-1', 'a stored non-random value is replaced');
  // Without storage: a fresh random value per page.
  const off = storage(true);
  const p1 = keptSessid(off, 'k'), p2 = keptSessid(off, 'k'), p3 = keptSessid(null, 'k');
  assert.ok(p1 !== p2 && p2 !== p3 && p1 !== p3);
  // A Verto without a sessid never uses its login.
  const v = new Verto({ url: 'ws://x', login: 'A', passwd: 'pw' });
  assert.notEqual(v.sessid, 'A');
  assert.match(v.sessid, uuid);
});

test('falls back to ready when clientReady never comes', async () => {
  const s = setup();
  s.v.start();
  s.ws().open();
  s.ws().recv({ jsonrpc: '2.0', id: s.ws().last().id, result: { message: 'logged in' } });
  await flush();
  assert.equal(s.ready(), 0);
  s.clock.advance(1500);
  assert.equal(s.ready(), 1);
});

test('"Authentication Required" logs in again and retries', async () => {
  const s = setup();
  s.v.start();
  await logIn(s.ws());
  const p = s.v.info('B', 'eA==');
  const first = s.ws().last();
  s.ws().recv({ jsonrpc: '2.0', id: first.id, error: { code: -32000, message: 'Authentication Required' } });
  await flush();
  const relogin = s.ws().last();
  assert.equal(relogin.method, 'login');
  s.ws().recv({ jsonrpc: '2.0', id: relogin.id, result: { message: 'logged in' } });
  await flush();
  const retry = s.ws().last();
  assert.equal(retry.method, 'verto.info');
  assert.deepEqual(retry.params.msg, { to: 'B', body: 'eA==' });
  s.ws().recv({ jsonrpc: '2.0', id: retry.id, result: { message: 'SENT' } });
  assert.deepEqual(await p, { message: 'SENT' });
});

test('dispatches server requests, batches included', async () => {
  const s = setup();
  s.v.start();
  await logIn(s.ws());
  s.ws().recv([
    { jsonrpc: '2.0', id: 3, method: 'verto.event', params: { eventChannel: 'c', eventData: 'x', userid: 'B@d' } },
    { jsonrpc: '2.0', id: 5, method: 'verto.info', params: { msg: { from: 'B', to: 'A@d', body: 'eA==' } } },
  ]);
  s.ws().onmessage({ data: 'not json' });
  assert.deepEqual(s.events.map((e) => e[0]), ['event', 'info']);
  assert.equal(s.events[1][1].msg.from, 'B');
});

test('reconnects at once, then backs off; resets after a login', async () => {
  const s = setup();
  s.v.start();
  await logIn(s.ws());
  s.ws().close();
  assert.equal(s.v.state, 'reconnecting');
  s.clock.advance(200);
  assert.equal(FakeSocket.all.length, 2, 'immediate retry');
  s.ws().close();
  s.clock.advance(4000);
  assert.equal(FakeSocket.all.length, 2);
  s.clock.advance(1000);
  assert.equal(FakeSocket.all.length, 3, 'second retry after ~5 s');
  s.ws().close();
  s.clock.advance(10000);
  assert.equal(FakeSocket.all.length, 4, 'third retry after ~10 s');
  await logIn(s.ws());
  assert.equal(s.v.state, 'ready');
  assert.equal(s.ready(), 2);
  s.ws().close();
  s.clock.advance(200);
  assert.equal(FakeSocket.all.length, 5, 'immediate again after a good login');
});

test('pending requests fail when the socket drops', async () => {
  const s = setup();
  s.v.start();
  await logIn(s.ws());
  const p = s.v.subscribe('c');
  s.ws().close();
  await assert.rejects(p, /disconnected/);
});

test('keepalive echo about every 45 s; an unanswered echo reconnects', async () => {
  const s = setup();
  s.v.start();
  await logIn(s.ws());
  s.clock.advance(44999);
  assert.equal(s.ws().last().method, 'login');
  s.clock.advance(1);
  const echo = s.ws().last();
  assert.equal(echo.method, 'echo');
  s.ws().recv({ jsonrpc: '2.0', id: echo.id, result: echo.params });
  await flush();
  s.clock.advance(45000);
  assert.equal(s.ws().last().method, 'echo');
  assert.notEqual(s.ws().last().id, echo.id);
  s.clock.advance(10000); // no answer: request expires
  await flush();
  assert.equal(s.v.state, 'reconnecting');
  s.clock.advance(300);
  assert.equal(FakeSocket.all.length, 2);
});

test('punt stops for good', async () => {
  const s = setup();
  s.v.start();
  await logIn(s.ws());
  s.ws().recv({ jsonrpc: '2.0', id: 15, method: 'verto.punt', params: {} });
  assert.equal(s.v.state, 'punted');
  s.clock.advance(120000);
  assert.equal(FakeSocket.all.length, 1);
});

test('closed as removed (4003): state removed, never reconnects', async () => {
  const s = setup();
  s.v.start();
  await logIn(s.ws());
  const p = s.v.subscribe('c');
  s.ws().closedBy(4003);
  assert.equal(s.v.state, 'removed');
  assert.deepEqual(s.states.slice(-1), ['removed']);
  await assert.rejects(p, /disconnected/);
  s.clock.advance(120000);
  assert.equal(FakeSocket.all.length, 1, 'no reconnect');
  s.v.reconnectNow(); // the browser back online
  assert.equal(FakeSocket.all.length, 1, 'still none');
  // Any other close code reconnects as before.
  const o = setup();
  o.v.start();
  await logIn(o.ws());
  o.ws().closedBy(1006);
  assert.equal(o.v.state, 'reconnecting');
  o.clock.advance(300);
  assert.equal(FakeSocket.all.length, 2);
});

test('bad credentials: login failed, retried slowly', async () => {
  const s = setup();
  s.v.start();
  s.ws().open();
  s.ws().recv({ jsonrpc: '2.0', id: s.ws().last().id, error: { code: -32001, message: 'Authentication Failure' } });
  await flush();
  assert.equal(s.v.state, 'login failed');
  s.clock.advance(20000);
  assert.equal(FakeSocket.all.length, 1);
  s.clock.advance(15000);
  assert.equal(FakeSocket.all.length, 2);
  assert.equal(s.v.state, 'login failed');
});

test('a login without an answer is tried again on a new connection', async (t) => {
  const s = setup();
  t.mock.method(console, 'warn', () => {});
  s.v.start();
  s.ws().open();
  s.clock.advance(10000); // the login request expires
  await flush();
  assert.equal(s.ws().readyState, 3, 'the silent socket is closed');
  assert.equal(s.v.state, 'reconnecting');
  s.clock.advance(250);
  assert.equal(FakeSocket.all.length, 2, 'and a new one opened');
  await logIn(s.ws());
  assert.equal(s.v.state, 'ready');
});

test('session in use (a squatted sessid on mod_verto): retried at once under a new sessid', async () => {
  FakeSocket.all = [];
  const clock = new Clock();
  /** @type {string[]} */
  const kept = [];
  const v = new Verto({ url: 'ws://x/verto', login: 'A', passwd: 'pw', sessid: 'S', WebSocket: FakeSocket, timers: clock, random: () => 0.5, onSessid: (x) => kept.push(x) });
  v.start();
  const ws = FakeSocket.all[0];
  ws.open();
  ws.recv({ jsonrpc: '2.0', id: ws.last().id, error: { code: -32001, message: 'Session in use' } });
  await flush();
  assert.notEqual(v.state, 'login failed');
  clock.advance(250);
  assert.equal(FakeSocket.all.length, 2, 'reconnects without the slow retry of bad credentials');
  const next = FakeSocket.all[1];
  next.open();
  const login = next.last();
  assert.notEqual(login.params.sessid, 'S');
  assert.deepEqual(kept, [login.params.sessid], 'the new sessid is kept for reloads');
});

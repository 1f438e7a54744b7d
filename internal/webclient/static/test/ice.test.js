import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IceServers, RENEW_MS, RETRY_MS, TIMEOUT_MS } from '../ice.js';
import { shortTimeouts, unanswered } from './fakes.js';

const HOUR = 3600 * 1000;
const T0 = 1_700_000_000_000; // ms

const stun = { urls: ['stun:stun.example:3478'] };
/** @param {number} exp Unix seconds */
const turnSet = (exp) => [stun, { urls: ['turn:turn.example:3478'], username: `${exp}:me`, credential: `c${exp}` }];

/**
 * An IceServers over a fake clock and fetch. answer decides each fetch's
 * outcome: a body, an HTTP status, or an Error to throw.
 * @param {import('../ice.js').IceConfig} cfg
 * @param {(n: number) => any} answer
 */
function harness(cfg, answer) {
  const h = {
    now: T0,
    /** @type {{url: string, init: RequestInit}[]} */
    calls: [],
    /** @type {string[]} */
    logs: [],
    /** @type {(() => void) | null} holds the next answer back until called */
    gate: null,
  };
  const ice = new IceServers(cfg, {
    now: () => h.now,
    fetch: async (url, init) => {
      h.calls.push({ url, init });
      const a = answer(h.calls.length);
      if (h.gate) await new Promise((ok) => { h.gate = ok; });
      if (a instanceof Error) throw a;
      if (typeof a === 'number') return /** @type {Response} */ ({ ok: false, status: a, json: async () => ({}) });
      return /** @type {Response} */ ({ ok: true, status: 200, json: async () => a });
    },
    log: (msg) => h.logs.push(msg),
  });
  return { h, ice };
}

const expiring = (ms) => ({ iceServers: turnSet((T0 + ms) / 1000), iceExpires: (T0 + ms) / 1000, iceUrl: '/c/x/ice' });

test('when a renewal is due', async (t) => {
  const cases = [
    { name: 'never expires', cfg: { iceServers: [stun] }, after: 10 * 24 * HOUR, fetches: 0 },
    { name: 'expiry without a URL', cfg: { iceServers: [stun], iceExpires: T0 / 1000 + 60 }, after: HOUR, fetches: 0 },
    { name: 'fresh day-long set', cfg: expiring(24 * HOUR), after: 0, fetches: 0 },
    { name: 'day-long set, just under half gone', cfg: expiring(24 * HOUR), after: 12 * HOUR - 1000, fetches: 0 },
    { name: 'day-long set, half gone', cfg: expiring(24 * HOUR), after: 12 * HOUR, fetches: 1 },
    { name: 'hour-long set, 31 minutes left', cfg: expiring(HOUR), after: 29 * 60 * 1000, fetches: 0 },
    { name: 'hour-long set, 30 minutes left', cfg: expiring(HOUR), after: 30 * 60 * 1000, fetches: 1 },
    { name: 'short set, outside the last 10 minutes', cfg: expiring(15 * 60 * 1000), after: 4 * 60 * 1000, fetches: 0 },
    { name: 'short set, within the last 10 minutes', cfg: expiring(15 * 60 * 1000), after: 5 * 60 * 1000, fetches: 1 },
    { name: 'already expired', cfg: expiring(HOUR), after: 2 * HOUR, fetches: 1 },
    { name: 'expired before the page was read', cfg: expiring(-HOUR), after: 0, fetches: 1 },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const { h, ice } = harness(c.cfg, () => ({ iceServers: turnSet(9), iceExpires: (h.now + 24 * HOUR) / 1000 }));
      h.now += c.after;
      await ice.refresh();
      assert.equal(h.calls.length, c.fetches);
    });
  }
});

test('a renewal replaces the set and asks the page\'s own origin with its cookies', async () => {
  const fresh = turnSet((T0 + 30 * HOUR) / 1000);
  const { h, ice } = harness(expiring(HOUR), () => ({ iceServers: fresh, iceExpires: (T0 + 30 * HOUR) / 1000 }));
  const before = ice.list();
  assert.equal(ice.policy(), 'all');
  h.now += 55 * 60 * 1000;
  await ice.refresh();
  assert.equal(h.calls.length, 1);
  assert.equal(h.calls[0].url, '/c/x/ice');
  assert.equal(h.calls[0].init.credentials, 'same-origin');
  assert.deepEqual(ice.list(), fresh);
  assert.notDeepEqual(ice.list(), before);
  assert.equal(ice.left(), 30 * HOUR - 55 * 60 * 1000, 'no iceTtl: iceExpires by our clock');
  // Fresh for a while: nothing more to fetch.
  await ice.refresh();
  h.now += HOUR;
  await ice.refresh();
  assert.equal(h.calls.length, 1);
  assert.deepEqual(h.logs, []);
});

test('a failed renewal keeps the old set, logs, and waits before trying again', async (t) => {
  for (const [name, failure] of [
    ['HTTP error', 429],
    ['network error', new Error('offline')],
    ['malformed answer', { iceServers: 'nope' }],
    ['no expiry', { iceServers: [] }],
  ]) {
    await t.test(/** @type {string} */ (name), async () => {
      let n = 0;
      const good = { iceServers: turnSet(T0 / 1000 + 86400), iceExpires: T0 / 1000 + 86400 };
      const { h, ice } = harness(expiring(5 * 60 * 1000), () => (++n === 1 ? failure : good));
      const old = ice.list();
      await ice.refresh(); // never rejects
      assert.equal(h.calls.length, 1);
      assert.equal(ice.list(), old);
      assert.equal(h.logs.length, 1);
      // Not again at once: a reconnect loop must not hammer the server.
      h.now += RETRY_MS - 1;
      await ice.refresh();
      assert.equal(h.calls.length, 1);
      h.now += 1;
      await ice.refresh();
      assert.equal(h.calls.length, 2);
      assert.deepEqual(ice.list(), good.iceServers);
    });
  }
});

test('calls during a renewal share it', async () => {
  const { h, ice } = harness(expiring(RENEW_MS), () => ({ iceServers: turnSet(1), iceExpires: T0 / 1000 + 86400 }));
  h.gate = () => {};
  const a = ice.refresh();
  const b = ice.refresh();
  assert.equal(a, b);
  await new Promise((ok) => setImmediate(ok));
  assert.equal(h.calls.length, 1);
  /** @type {() => void} */ (h.gate)();
  h.gate = null;
  await Promise.all([a, b]);
  assert.equal(ice.left(), 86400 * 1000);
  await ice.refresh();
  assert.equal(h.calls.length, 1);
});

test('the expiry counts from iceTtl on our own clock, however far off the server\'s it is', async (t) => {
  // The server mints day-long credentials at its time T0 and answers
  // every renewal likewise; the browser's clock is off by skew.
  for (const [name, skew] of [['in step', 0], ['13 hours ahead', 13 * HOUR], ['25 hours ahead', 25 * HOUR], ['two days behind', -48 * HOUR]]) {
    await t.test(String(name), async () => {
      const day = (/** @type {number} */ serverNow) => ({ iceServers: turnSet(serverNow / 1000 + 86400), iceExpires: serverNow / 1000 + 86400, iceTtl: 86400 });
      const { h, ice } = harness({ ...day(T0), iceUrl: '/c/x/ice' }, () => day(h.now - Number(skew)));
      h.now = T0 + Number(skew);
      // The page reads its config as the clock says now.
      const page = new IceServers({ ...day(T0), iceUrl: '/c/x/ice' }, { now: () => h.now, fetch: (u, i) => ice.fetch(u, i), log: ice.log });
      await page.refresh();
      h.now += 12 * HOUR - 1000;
      await page.refresh();
      assert.equal(h.calls.length, 0, 'not renewed before half the lifetime');
      h.now += 1000;
      await page.refresh();
      assert.equal(h.calls.length, 1, 'renewed at half the lifetime');
      await page.refresh();
      h.now += 12 * HOUR - 1000;
      await page.refresh();
      assert.equal(h.calls.length, 1, 'the renewed set is fresh for half its lifetime');
      h.now += 1000;
      await page.refresh();
      assert.equal(h.calls.length, 2);
      assert.deepEqual(h.logs, []);
    });
  }
});

test('without iceTtl (an older server), iceExpires is compared with our clock', async () => {
  const { h, ice } = harness({ ...expiring(24 * HOUR), iceTtl: undefined }, () => ({ iceServers: [], iceExpires: 1 }));
  assert.equal(ice.left(), 24 * HOUR);
  h.now += 12 * HOUR;
  await ice.refresh();
  assert.equal(h.calls.length, 1);
  // A set that never expires has no iceTtl to count from either.
  assert.equal(new IceServers({ iceServers: [stun], iceExpires: 0, iceTtl: 0 }).left(), Infinity);
});

test('a renewal the server never answers fails after the timeout, and the old set stays', async () => {
  const logs = /** @type {unknown[]} */ ([]);
  const ice = new IceServers(expiring(RENEW_MS), { now: () => T0, fetch: unanswered, log: (m, e) => logs.push(m, e) });
  const old = ice.list();
  const start = Date.now();
  const asked = await shortTimeouts(() => ice.refresh());
  const took = Date.now() - start;
  assert.deepEqual(asked, [TIMEOUT_MS]);
  assert.equal(TIMEOUT_MS, 5000);
  assert.ok(took >= 40 && took < 2000, `gave up after ${took} ms`);
  assert.equal(ice.list(), old);
  assert.equal(logs[0], 'ICE renewal failed, old servers kept');
  assert.equal(/** @type {any} */ (logs[1])?.name, 'TimeoutError');
  assert.equal(ice.pending, null, 'the next call does not wait for it');
});

test('transport policy', () => {
  for (const [given, want] of [[undefined, 'all'], ['all', 'all'], ['relay', 'relay'], ['bogus', 'all']]) {
    const ice = new IceServers({ iceTransportPolicy: given });
    assert.equal(ice.policy(), want);
  }
  assert.deepEqual(new IceServers({}).list(), []);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controller, serial, OFFERS } from '../controller.js';
import { Presence, EXPIRE_MS } from '../presence.js';
import { encodeBody, decodeBody, Sealer } from '../codec.js';
import { IceServers } from '../ice.js';
import { FakeStream, fakeDevices, FakeAudioContext, FakeLink, waitFor, shortTimeouts, unanswered } from './fakes.js';

/**
 * Lets chains of promises settle, for showing that something did not
 * happen: enough where the fakes answer at once, as timers run only once
 * no promise callback is left. Not for Web Crypto, which answers from
 * another thread after however long a busy machine takes: waitFor that.
 */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((ok) => setTimeout(ok, 1));
};

/** A Verto client that records what the controller sends. */
class FakeVerto {
  constructor() {
    this.state = 'connecting';
    /** @type {any} the handlers the controller gave */
    this.h = null;
    /** @type {{to: string, m: any}[]} */
    this.sent = [];
    /** @type {any[]} */
    this.broadcasts = [];
    /** @type {((to: string, m: any) => Error | null)} a refusal for a direct message, or null */
    this.refuse = () => null;
    /** @type {((m: any) => Error | null)} a refusal for a broadcast, or null */
    this.refuseBroadcast = () => null;
    /** @type {((to: string, m: any) => Promise<any>) | null} the relay's answer to a direct message, when not at once */
    this.answer = null;
    this.starts = 0;
  }
  start() { this.starts++; }
  /** Stops for good, as Verto does (a removal). @param {string} s */
  halt(s) { this.state = s; this.h.onState(s); }
  lost() {}
  reconnectNow() {}
  subscribe() { return Promise.resolve({}); }
  /** @param {string} ch @param {string} data */
  broadcast(ch, data) {
    const m = decodeBody(data);
    const err = this.refuseBroadcast(m);
    if (err) return Promise.reject(err);
    this.broadcasts.push({ ch, ...m });
    return Promise.resolve({});
  }
  /** @param {string} to @param {string} body */
  info(to, body) {
    const m = decodeBody(body);
    const err = this.refuse(to, m);
    if (err) return Promise.reject(err);
    this.sent.push({ to, m });
    return this.answer ? this.answer(to, m) : Promise.resolve({});
  }
}

/** A view that records what it is told. */
class FakeView {
  constructor() {
    /** @type {any} the actions the controller gave */
    this.act = null;
    /** @type {string[]} */
    this.states = [];
    /** @type {string[]} */
    this.warnings = [];
    /** @type {any[]} */
    this.previews = [];
    /** @type {{id: string, name: string}[]} */
    this.peers = [];
    this.canCall = false;
    /** @type {string[]} the peers the view was told had just arrived, in order */
    this.arrived = [];
    this.note = '';
    this.secure = '';
    /** @type {number[]} */
    this.levels = [];
    /** @type {any} */
    this.devices = null;
    /** @type {any} what the view last showed of the call */
    this.show = null;
    /** @type {Set<string> | null} */
    this.inCall = null;
    this.conn = '';
    this.locked = false;
  }
  /** @param {string} s */ setConn(s) { this.conn = s; }
  /** @param {boolean} on */ setLocked(on) { this.locked = on; }
  announce() {}
  /** @param {string} t */ setNote(t) { this.note = t; }
  setName() {}
  /** @param {any[]} p @param {boolean} can @param {string[]} [arrived] @param {Set<string> | null} [inCall] */
  setPeers(p, can, arrived = [], inCall = null) { this.peers = p; this.canCall = can; this.arrived.push(...arrived); this.inCall = inCall; }
  /** @param {any} c @param {string} secure */
  setCall(c, secure) { this.states.push(c ? c.state : 'none'); this.show = c; if (secure) this.secure = secure; }
  setStats() {}
  /** @param {any[]} list @param {any} using */ setDevices(list, using) { this.devices = { list, using }; }
  /** @param {string} state @param {any} stream @param {string} problem */
  setPreview(state, stream, problem) { this.previews.push({ state, stream, problem }); }
  /** @param {number} v */ setLevel(v) { this.levels.push(v); }
  /** @param {string} t */ warn(t) { this.warnings.push(t); }
}

/**
 * A controller for client `self`, online in channel "room", with fakes
 * all round; more options (the chat's, moderation's) in opts.
 * @param {{self?: string, sealed?: boolean, md?: any, ice?: any, opts?: Partial<import('../controller.js').ControllerOptions>}} [o]
 */
async function page({ self = 'bbbb', sealed = false, md = undefined, ice = undefined, opts = {} } = {}) {
  const verto = new FakeVerto();
  const view = new FakeView();
  /** @type {FakeLink[]} */
  const calls = [];
  const win = new EventTarget();
  /** @type {(() => void)[]} */
  const beats = [];
  let now = 1000;
  const clock = { now: () => now, pass: (/** @type {number} */ ms) => { now += ms; } };
  const presence = new Presence(self, clock.now);
  const warnings = /** @type {string[]} */ ([]);
  const ringer = { ringing: '', start(/** @type {string} */ n) { this.ringing = n; }, stop() { this.ringing = ''; } };
  ice ||= { refreshed: 0, list: () => [], refresh() { this.refreshed++; return Promise.resolve(); } };
  /** @type {(() => void)[]} */
  const timers = [];
  /** @type {Map<() => void, number>} each timer's delay */
  const delays = new Map();
  const ctl = controller({
    channelId: 'room', self, name: 'Me', inst: 'page-1',
    verto: (h) => { verto.h = h; return /** @type {any} */ (verto); },
    view: (a) => { view.act = a; return /** @type {any} */ (view); },
    presence, ice, ringer, md, AC: /** @type {any} */ (FakeAudioContext),
    keys: sealed ? Sealer.create() : Promise.resolve(null),
    newLink: (o) => { const c = new FakeLink(o); calls.push(c); return /** @type {any} */ (c); },
    win: /** @type {any} */ (win),
    every: (f) => { beats.push(f); return () => { beats.splice(beats.indexOf(f), 1); }; },
    timers: { set: (f, ms) => { timers.push(f); delays.set(f, ms); return f; }, clear: (f) => { const i = timers.indexOf(f); if (i >= 0) timers.splice(i, 1); } },
    log: { warn: (...a) => { warnings.push(a.map(String).join(' ')); } },
    ...opts,
  });
  ctl.start();
  verto.state = 'ready';
  verto.h.onState('ready');
  verto.h.onReady();
  // The hello goes out once the key pair is made.
  await waitFor(() => verto.broadcasts.length > 0);
  return { verto, view, calls, win, beats, clock, presence, ringer, ice, warnings, timers, delays };
}

/** Someone announcing themselves on the channel. @param {any} p @param {string} id @param {any} a */
function announce(p, id, a) {
  p.verto.h.onEvent({ eventChannel: 'room', userid: id + '@example.org', eventData: encodeBody({ t: 'available', inst: id + '-1', ...a }) });
}

/** A direct message through the relay. @param {any} p @param {string} from @param {any} body */
function direct(p, from, body) {
  p.verto.h.onInfo({ msg: { from: from + '@example.org', to: 'bbbb', body: encodeBody(body) } });
}

test('on ready: refreshes the ICE servers and announces with a hello', async () => {
  const p = await page();
  assert.equal(p.verto.starts, 1);
  assert.equal(p.ice.refreshed, 1);
  assert.deepEqual(p.verto.broadcasts, [{ ch: 'room', t: 'available', name: 'Me', key: '', inst: 'page-1', hello: true }]);
});

test('a hello is answered with one direct message, not a broadcast', async () => {
  const p = await page();
  announce(p, 'cccc', { name: 'Cy', hello: true });
  await waitFor(() => p.verto.sent.length > 0);
  assert.deepEqual(p.verto.sent, [{ to: 'cccc', m: { t: 'here', name: 'Me', key: '', inst: 'page-1' } }]);
  assert.equal(p.verto.broadcasts.length, 1, 'only our own hello was broadcast');
  assert.deepEqual(p.view.peers.map((x) => x.name), ['Cy']);
  announce(p, 'cccc', { name: 'Cy' });
  await settle();
  assert.equal(p.verto.sent.length, 1, 'a heartbeat is not answered');
});

test('an answer to our hello lets its sender in, who may then call', async () => {
  const p = await page();
  direct(p, 'dddd', { t: 'here', name: 'Dee', inst: 'd-1' });
  await waitFor(() => p.view.peers.length > 0);
  assert.deepEqual(p.view.peers.map((x) => x.name), ['Dee']);
  assert.equal(p.verto.sent.length, 0, 'an answer is not answered');
  direct(p, 'dddd', { t: 'offer', call: 'c1' });
  await waitFor(() => p.ringer.ringing !== '');
  assert.equal(p.ringer.ringing, 'Dee');
});

test('only a hello is an arrival the view announces: answers to ours and heartbeats are not', async () => {
  const p = await page();
  // Those already here answer the page's hello, or are heard in a heartbeat first.
  direct(p, 'dddd', { t: 'here', name: 'Dee', inst: 'd-1' });
  announce(p, 'eeee', { name: 'Eve' });
  await waitFor(() => p.view.peers.length === 2);
  assert.deepEqual(p.view.arrived, []);
  announce(p, 'cccc', { name: 'Cy', hello: true });
  await settle();
  assert.deepEqual(p.view.arrived, ['cccc']);
  assert.deepEqual(p.view.peers.map((x) => x.name).sort(), ['Cy', 'Dee', 'Eve']);
  announce(p, 'cccc', { name: 'Cy' });
  announce(p, 'cccc', { name: 'Cyrus' });
  await settle();
  assert.deepEqual(p.view.arrived, ['cccc'], 'heartbeats, a new name: no arrival');
});

test('after a reconnect, peers who do not answer the hello are dropped', async () => {
  const p = await page();
  announce(p, 'cccc', { name: 'Cy' });
  announce(p, 'dddd', { name: 'Dee' });
  await settle();
  assert.equal(p.view.peers.length, 2);
  p.clock.pass(60000);
  p.timers.length = 0;
  p.verto.h.onReady(); // back after a lost connection
  await waitFor(() => p.verto.broadcasts.length === 2);
  assert.equal(p.verto.broadcasts[1].hello, true);
  p.clock.pass(100);
  direct(p, 'dddd', { t: 'here', name: 'Dee', inst: 'dddd-1' });
  await settle();
  assert.equal(p.timers.length, 1, 'one check waits');
  p.clock.pass(5000);
  p.timers[0]();
  assert.deepEqual(p.view.peers.map((x) => x.name), ['Dee'], 'Cy left while we were away');
});

test('a hello the budget refused is sent again', async () => {
  const p = await page();
  let refused = 0;
  p.verto.refuseBroadcast = (m) => (m.hello && refused++ === 0 ? Object.assign(new Error('Rate limit exceeded'), { code: -32010 }) : null);
  p.timers.length = 0;
  p.verto.h.onReady();
  await waitFor(() => p.timers.length === 1); // the retry (no reconnect check for a hello not sent)
  assert.equal(p.verto.broadcasts.length, 1);
  p.timers[0]();
  await waitFor(() => p.verto.broadcasts.length === 2);
  assert.equal(p.verto.broadcasts[1].hello, true);
  await waitFor(() => p.timers.length === 2); // now the reconnect check
});

test('an offer from someone not seen on the channel is ignored', async () => {
  const p = await page();
  direct(p, 'zzzz', { t: 'offer', call: 'c1' });
  await settle();
  assert.equal(p.calls.length, 0);
  assert.equal(p.ringer.ringing, '');
  // The same once they have announced themselves.
  announce(p, 'zzzz', { name: 'Zed' });
  direct(p, 'zzzz', { t: 'offer', call: 'c2' });
  await waitFor(() => p.ringer.ringing);
  assert.equal(p.calls.length, 1);
  assert.equal(p.ringer.ringing, 'Zed');
  assert.deepEqual(p.view.states.at(-1), 'ringing');
});

test('an incoming offer renews expiring TURN credentials before its call is made', async () => {
  const stale = [{ urls: 'turn:turn.example.org', username: '1000:bbbb', credential: 'old' }];
  const fresh = [{ urls: 'turn:turn.example.org', username: '9000:bbbb', credential: 'new' }];
  /** @type {(() => void) | null} finishes the renewal under way */
  let finish = null;
  // Like ice.js: a no-op until due, then a fetch that changes list() when it returns.
  const ice = {
    servers: stale, due: false, refreshed: 0,
    list() { return this.servers; },
    refresh() {
      this.refreshed++;
      if (!this.due) return Promise.resolve();
      return new Promise((done) => { finish = () => { this.servers = fresh; this.due = false; done(undefined); }; });
    },
  };
  const p = await page({ ice });
  assert.equal(ice.refreshed, 1, 'on ready');
  announce(p, 'aaaa', { name: 'Ann' });
  // Hours later, the credentials near expiry, a call comes in with its
  // first description right behind the offer.
  ice.due = true;
  direct(p, 'aaaa', { t: 'offer', call: 'c1' });
  direct(p, 'aaaa', { t: 'sdp', call: 'c1', d: { type: 'offer', sdp: 'v=0' } });
  await waitFor(() => finish);
  assert.equal(ice.refreshed, 2, 'the offer asked for fresh servers');
  assert.equal(p.calls.length, 0, 'no call on the stale servers while the renewal runs');
  assert.ok(finish, 'a renewal is under way');
  /** @type {() => void} */ (finish)();
  await waitFor(() => p.calls[0]?.handled.length);
  assert.equal(p.calls.length, 1);
  assert.deepEqual(p.calls[0].o.iceServers, fresh);
  assert.equal(p.ringer.ringing, 'Ann');
  // The message behind the offer waited for it, and reached the call.
  assert.deepEqual(p.calls[0].handled, [{ t: 'sdp', call: 'c1', d: { type: 'offer', sdp: 'v=0' } }]);
});

test('a failed ICE renewal still rings, on the old servers, and is logged', async () => {
  const old = [{ urls: 'stun:stun.example.org' }];
  const ice = { due: false, list: () => old, refresh() { return this.due ? Promise.reject(new Error('HTTP 502')) : Promise.resolve(); } };
  const p = await page({ ice });
  announce(p, 'aaaa', { name: 'Ann' });
  ice.due = true;
  direct(p, 'aaaa', { t: 'offer', call: 'c1' });
  await waitFor(() => p.ringer.ringing);
  assert.equal(p.calls.length, 1);
  assert.equal(p.calls[0].o.iceServers, old);
  assert.equal(p.ringer.ringing, 'Ann');
  assert.ok(p.warnings.some((w) => w.startsWith('channels: ICE refresh, old servers kept:')), p.warnings.join('\n'));
});

test('a replayed offer is ignored, even after the call ended', async () => {
  const p = await page();
  announce(p, 'aaaa', { name: 'Ann' });
  direct(p, 'aaaa', { t: 'offer', call: 'c1' });
  await waitFor(() => p.ringer.ringing);
  p.view.act.decline();
  assert.equal(p.ringer.ringing, '');
  direct(p, 'aaaa', { t: 'offer', call: 'c1' });
  // Messages from a peer are taken in order: once c2 rings, c1 was seen.
  direct(p, 'aaaa', { t: 'offer', call: 'c2' });
  await waitFor(() => p.ringer.ringing);
  assert.deepEqual(p.calls.map((c) => c.id), ['c1', 'c2'], 'no second call from the same offer');
});

test('the offers a page remembers are the last OFFERS, the oldest forgotten first', async () => {
  const p = await page();
  announce(p, 'aaaa', { name: 'Ann' });
  // c0 rings; the OFFERS after it are declined as busy, and remembered.
  for (let i = 0; i <= OFFERS; i++) direct(p, 'aaaa', { t: 'offer', call: 'c' + i });
  await waitFor(() => p.verto.sent.length === OFFERS);
  assert.equal(p.calls.length, 1);
  p.view.act.decline();
  direct(p, 'aaaa', { t: 'offer', call: 'c1' }); // the oldest remembered: ignored
  direct(p, 'aaaa', { t: 'offer', call: 'c0' }); // forgotten: taken as new
  await waitFor(() => p.ringer.ringing);
  assert.deepEqual(p.calls.map((c) => c.id), ['c0', 'c0']);
});

test('busy: a second caller is declined, the first keeps ringing', async () => {
  const p = await page();
  announce(p, 'aaaa', { name: 'Ann' });
  announce(p, 'cccc', { name: 'Cy' });
  direct(p, 'aaaa', { t: 'offer', call: 'c1' });
  await waitFor(() => p.ringer.ringing);
  direct(p, 'cccc', { t: 'offer', call: 'c2' });
  await waitFor(() => p.verto.sent.length);
  assert.equal(p.calls.length, 1);
  assert.deepEqual(p.verto.sent, [{ to: 'cccc', m: { t: 'decline', call: 'c2', busy: true } }]);
  assert.equal(p.calls[0].state, 'ringing');
  assert.equal(p.ringer.ringing, 'Ann');
});

test('glare: of two crossing calls, the one from the smaller id wins', async () => {
  for (const [self, peer, ours] of [['aaaa', 'bbbb', true], ['cccc', 'bbbb', false]]) {
    const p = await page({ self: String(self) });
    announce(p, String(peer), { name: 'Peer' });
    p.view.act.call(peer);
    await waitFor(() => p.verto.sent.length);
    assert.equal(p.calls.length, 1);
    assert.ok(p.calls[0].started, 'our call went out');
    assert.ok(p.ice.refreshed >= 2, 'ICE servers refreshed before placing the call');
    direct(p, String(peer), { t: 'offer', call: 'theirs' });
    await settle();
    if (ours) {
      assert.equal(p.calls.length, 1, `${self} < ${peer}: their offer is ignored`);
      assert.equal(p.calls[0].state, 'calling');
    } else {
      await waitFor(() => p.calls.length === 2);
      assert.equal(p.calls[0].state, 'idle', `${self} > ${peer}: our call yields`);
      assert.equal(p.calls[1].state, 'in call', 'theirs is taken without ringing: both wanted the call');
    }
    assert.ok(!p.verto.sent.some((s) => s.m.t === 'decline'), 'neither side is declined as busy');
  }
});

test('in a call: the list adds people and says who is in it; each tile gives its pair\'s safety code', async () => {
  const p = await page({ sealed: true, md: fakeDevices() });
  const ann = await Sealer.create(), cy = await Sealer.create();
  announce(p, 'aaaa', { name: 'Ann', key: ann.pub });
  announce(p, 'cccc', { name: 'Cy', key: cy.pub });
  await waitFor(() => p.view.peers.length === 2);
  assert.equal(p.view.inCall, null, 'no call: Call buttons');
  /** @param {number} i */
  const up = (i) => { p.calls[i].state = 'in call'; p.calls[i].o.onChange(p.calls[i]); };
  p.view.act.call('aaaa');
  await waitFor(() => p.calls.length === 1);
  up(0);
  assert.deepEqual([...(p.view.inCall || [])], ['aaaa']);
  assert.equal(p.view.canCall, true, 'room for more: Cy can be added');
  p.view.act.call('cccc');
  await waitFor(() => p.calls.length === 2);
  assert.deepEqual(p.calls[1].o.peer, 'cccc');
  up(1);
  await waitFor(() => /each person/.test(p.view.secure) && p.view.show.tiles.every((/** @type {any} */ t) => t.code));
  assert.equal(p.view.secure, 'Signalling end-to-end encrypted · each person’s code on their picture');
  for (const t of p.view.show.tiles) assert.match(t.code, /^\d\d( \d\d){5}$/, t.id);
  assert.notEqual(p.view.show.tiles[0].code, p.view.show.tiles[1].code, 'a code per pair');
  assert.deepEqual([...(p.view.inCall || [])].sort(), ['aaaa', 'cccc']);
});

test('sealed: once keys are known, unsealed messages are refused (no downgrade)', async () => {
  const p = await page({ sealed: true, md: fakeDevices() });
  const ours = p.verto.broadcasts[0].key;
  assert.ok(ours, 'the page announces its public key');
  const ann = await Sealer.create();
  announce(p, 'aaaa', { name: 'Ann', key: ann.pub });
  direct(p, 'aaaa', { t: 'offer', call: 'plain' });
  direct(p, 'aaaa', { s: await ann.seal(ours, { t: 'offer', call: 'c1' }, 'aaaa>bbbb') });
  // Opening the offer takes Web Crypto a while.
  await waitFor(() => p.ringer.ringing);
  assert.deepEqual(p.calls.map((c) => c.id), ['c1'], 'unsealed offer dropped, sealed one taken');
  // Sealed for another pair of ids: refused, and logged; unsealed:
  // refused. Messages from a peer are taken in order, so once the last
  // is handled the two before it were seen.
  direct(p, 'aaaa', { s: await ann.seal(ours, { t: 'ice', call: 'c1', c: 'other pair' }, 'aaaa>zzzz') });
  direct(p, 'aaaa', { t: 'ice', call: 'c1', c: 'unsealed' });
  direct(p, 'aaaa', { s: await ann.seal(ours, { t: 'ice', call: 'c1', c: 'sealed' }, 'aaaa>bbbb') });
  await waitFor(() => p.calls[0].handled.length);
  assert.deepEqual(p.calls[0].handled, [{ t: 'ice', call: 'c1', c: 'sealed' }]);
  assert.ok(p.warnings.some((w) => w.startsWith('channels: message from aaaa:')), p.warnings.join('\n'));
  // What we send to Ann is sealed too.
  p.view.act.accept();
  await waitFor(() => p.verto.sent.length);
  assert.ok(p.verto.sent.every((s) => s.m.s && s.m.s.ct), JSON.stringify(p.verto.sent));
  // The safety code, made by Web Crypto, follows the call.
  await waitFor(() => p.view.secure);
  assert.match(p.view.secure, /^Signalling end-to-end encrypted · code \d\d( \d\d){5}$/);
  assert.deepEqual(await ann.open(ours, p.verto.sent[0].m.s, 'bbbb>aaaa'), { t: 'accept', call: 'c1' });
});

test('a peer leaving, or reloading, ends a ringing call', async () => {
  for (const leave of [{ t: 'unavailable' }, { t: 'available', name: 'Ann', inst: 'reloaded' }]) {
    const p = await page();
    announce(p, 'aaaa', { name: 'Ann' });
    direct(p, 'aaaa', { t: 'offer', call: 'c1' });
    await waitFor(() => p.ringer.ringing);
    assert.equal(p.ringer.ringing, 'Ann');
    p.verto.h.onEvent({ eventChannel: 'room', userid: 'aaaa@example.org', eventData: encodeBody(leave) });
    await settle();
    assert.equal(p.calls[0].state, 'idle', JSON.stringify(leave));
    assert.equal(p.ringer.ringing, '');
  }
});

test('a call under way outlives its peer\'s lost signalling; its own deadline decides', async () => {
  for (const leave of [
    (/** @type {any} */ p) => announce(p, 'aaaa', { t: 'unavailable' }),
    (/** @type {any} */ p) => direct(p, 'aaaa', { t: 'unavailable' }),
  ]) {
    const p = await page();
    announce(p, 'aaaa', { name: 'Ann' });
    direct(p, 'aaaa', { t: 'offer', call: 'c1' });
    await waitFor(() => p.ringer.ringing);
    p.calls[0].state = 'in call';
    leave(p);
    await waitFor(() => p.view.peers.length === 0);
    assert.equal(p.calls[0].state, 'in call', 'the server said the peer left; the media may well go on');
  }
});

test('presence changes apply in the order they came, behind a peer\'s direct messages', async () => {
  const p = await page();
  announce(p, 'aaaa', { name: 'Ann' });
  let release = () => {};
  p.ice.refresh = () => new Promise((ok) => { release = ok; }); // an offer waits for fresh ICE servers
  direct(p, 'aaaa', { t: 'offer', call: 'c1' });
  direct(p, 'aaaa', { t: 'here', name: 'Ann', inst: 'aaaa-1' });
  announce(p, 'aaaa', { t: 'unavailable' });
  await settle();
  release();
  await waitFor(() => p.view.peers.length === 0);
  await settle();
  assert.deepEqual(p.view.peers, [], 'the leave, which came last, wins');
});

test('a peer gone silent is forgotten, and its ringing call ends', async () => {
  const p = await page();
  announce(p, 'aaaa', { name: 'Ann' });
  direct(p, 'aaaa', { t: 'offer', call: 'c1' });
  await waitFor(() => p.ringer.ringing);
  p.clock.pass(EXPIRE_MS + 1);
  const before = p.verto.broadcasts.length;
  p.beats[0](); // the heartbeat
  assert.equal(p.verto.broadcasts.length, before + 1, 'the heartbeat announces');
  assert.equal(p.verto.broadcasts.at(-1).hello, false);
  assert.deepEqual(p.view.peers, []);
  assert.equal(p.calls[0].state, 'idle');
});

test('pagehide: hangs up; the leave is the server\'s to say', async () => {
  const p = await page();
  announce(p, 'aaaa', { name: 'Ann' });
  p.view.act.call('aaaa');
  await waitFor(() => p.verto.sent.length);
  const broadcasts = p.verto.broadcasts.length;
  p.win.dispatchEvent(new Event('pagehide'));
  await waitFor(() => p.verto.sent.length === 2);
  assert.equal(p.calls[0].state, 'idle');
  assert.deepEqual(p.verto.sent.map((s) => s.m.t), ['offer', 'close']);
  assert.equal(p.verto.broadcasts.length, broadcasts, 'no goodbye broadcast: a reload must not flicker');
});

test('undelivered messages: the call ends or the person is told, and it is logged', async () => {
  const p = await page();
  announce(p, 'aaaa', { name: 'Ann' });
  p.verto.refuse = () => new Error('Recipient is busy');
  p.view.act.call('aaaa');
  await waitFor(() => p.calls[0]?.state === 'idle');
  assert.equal(p.calls[0].reason, 'Could not reach Ann (Recipient is busy)');
  assert.ok(p.warnings.some((w) => w.startsWith('channels: send offer to aaaa:')), p.warnings.join('\n'));

  p.verto.refuse = () => null;
  direct(p, 'aaaa', { t: 'offer', call: 'c2' });
  await waitFor(() => p.ringer.ringing);
  p.verto.refuse = (to, m) => m.t === 'decline' ? new Error('not connected') : null;
  p.view.act.decline();
  await waitFor(() => p.view.warnings.length);
  assert.deepEqual(p.view.warnings, ['Could not reach Ann (not connected)']);
});

test('a camera that cannot restart is explained', async () => {
  const md = fakeDevices();
  let busy = false;
  const gum = md.getUserMedia;
  md.getUserMedia = (c) => busy && c.video ? Promise.reject(Object.assign(new Error('busy'), { name: 'NotReadableError' })) : gum(c);
  const p = await page({ md });
  announce(p, 'aaaa', { name: 'Ann' });
  p.view.act.call('aaaa');
  await waitFor(() => p.view.show?.local);
  busy = true; // another app takes the camera
  p.view.act.camera(); // off
  await waitFor(() => p.view.show.camOn === false);
  p.view.act.camera(); // on again: refused
  await waitFor(() => p.view.warnings.length);
  assert.deepEqual(p.view.warnings, ['The camera could not start: another app may be using it.']);
  assert.equal(p.view.show.camOn, false, 'still off, as the button says');
});

test('without media devices (plain http) the page says calls can only receive', async () => {
  const p = await page();
  assert.match(p.view.note, /https/);
  assert.deepEqual(p.view.previews, []);
});

test('camera check: self-view, level, devices, and its stream becomes the call\'s', async () => {
  const md = fakeDevices();
  const p = await page({ md });
  assert.deepEqual(p.view.previews, [{ state: 'off', stream: null, problem: '' }]);
  p.view.act.preview(true);
  await waitFor(() => p.view.previews.at(-1).state === 'on' && p.view.devices);
  const on = p.view.previews.at(-1);
  assert.equal(on.state, 'on');
  assert.ok(on.stream instanceof FakeStream);
  assert.equal(on.problem, '');
  assert.deepEqual(p.view.devices.using, { audio: 'mic-1', video: 'cam-1' });
  assert.equal(p.view.devices.list.length, 4);
  // The meter runs while shown (one of the "every" timers besides the heartbeat).
  assert.equal(p.beats.length, 2);
  p.beats[1]();
  assert.ok(p.view.levels.at(-1) > 0.1, `level ${p.view.levels.at(-1)}`);

  // Another microphone: the check starts again with it.
  p.view.act.device('audio', 'mic-2');
  await waitFor(() => p.view.previews.at(-1).stream?.getAudioTracks()[0].deviceId === 'mic-2');
  assert.deepEqual(md.asked.at(-1), { audio: { deviceId: { exact: 'mic-2' } }, video: { width: { ideal: 1280 }, height: { ideal: 720 } } });
  const stream = p.view.previews.at(-1).stream;
  assert.equal(stream.getAudioTracks()[0].getSettings().deviceId, 'mic-2');

  // A call comes in and is accepted: it takes the check's stream, camera running.
  announce(p, 'aaaa', { name: 'Ann' });
  direct(p, 'aaaa', { t: 'offer', call: 'c1' });
  await waitFor(() => p.ringer.ringing);
  assert.equal(p.beats.length, 1, 'no meter while it rings');
  const asked = md.asked.length;
  p.view.act.accept();
  await waitFor(() => p.view.show?.local);
  assert.equal(p.view.show.local, stream);
  assert.equal(md.asked.length, asked, 'the camera was not asked for again');
  assert.ok(stream.getTracks().every((t) => t.readyState === 'live'));
  assert.equal(p.view.previews.at(-1).state, 'off');
});

test('camera check: loaded when asked for; closed before it loaded, it never starts', async () => {
  const md = fakeDevices();
  const p = await page({ md });
  p.view.act.preview(true); // check.js loads: import() answers later, however quick
  p.view.act.preview(false);
  await settle();
  assert.deepEqual(p.view.previews, [{ state: 'off', stream: null, problem: '' }]);
  assert.equal(md.asked.length, 0, 'the camera was not asked for');
  p.view.act.preview(true);
  await waitFor(() => p.view.previews.at(-1).state === 'on');
  assert.equal(md.asked.length, 1);
});

test('camera check: a denied permission is explained, and nothing runs', async () => {
  const md = fakeDevices({ fail: 'NotAllowedError' });
  const p = await page({ md });
  p.view.act.preview(true);
  await waitFor(() => p.view.previews.at(-1).problem);
  const last = p.view.previews.at(-1);
  assert.equal(last.state, 'off');
  assert.equal(last.stream, null);
  assert.equal(last.problem, 'Permission for the camera and microphone was denied: allow it in the site settings by the address bar.');
  assert.equal(p.beats.length, 1, 'no meter');
  assert.ok(p.warnings.some((w) => w.includes('NotAllowedError')), p.warnings.join('\n'));
});

test('an ICE renewal the server never answers holds calls back for its timeout only', async () => {
  const old = [{ urls: 'turn:turn.example.org', username: '1:bbbb', credential: 'old' }];
  // Credentials at their end, so every call asks for fresh ones.
  let fetches = 0;
  const ice = new IceServers({ iceServers: old, iceExpires: 1, iceTtl: 0, iceUrl: '/c/room/ice' }, {
    fetch: (url, init) => { fetches++; return unanswered(url, init); }, log: () => {},
  });
  await shortTimeouts(async () => {
    const p = await page({ ice });
    announce(p, 'aaaa', { name: 'Ann' });
    await waitFor(() => !ice.pending); // the renewal on ready gave up
    ice.retryAt = 0;
    p.view.act.call('aaaa');
    await waitFor(() => p.calls.length, 2000);
    assert.equal(p.calls[0].o.iceServers, old, 'placed on the old servers');
    assert.equal(fetches, 2, 'after asking for fresh ones');
    p.view.act.hangup();
    ice.retryAt = 0;
    direct(p, 'aaaa', { t: 'offer', call: 'c2' });
    await waitFor(() => p.ringer.ringing, 2000);
    assert.equal(p.calls[1].o.iceServers, old, 'rings on the old servers');
    assert.equal(fetches, 3);
  });
});

test('serial: jobs under one key run in order, failures are reported, and finished keys are forgotten', async () => {
  /** @type {Map<string, Promise<void>>} */
  const map = new Map();
  /** @type {string[]} */
  const log = [];
  /** @type {(() => void)[]} */
  const gates = [];
  const job = (/** @type {string} */ name, fail = false) => () => new Promise((ok, no) => {
    log.push('start ' + name);
    gates.push(() => { log.push('end ' + name); fail ? no(new Error(name)) : ok(undefined); });
  });
  const failed = (/** @type {any} */ e) => { log.push('failed ' + e.message); };
  serial(map, 'ann', job('a1', true), failed);
  const a2 = serial(map, 'ann', job('a2'), failed);
  serial(map, 'cy', job('c1'), failed);
  await settle();
  assert.deepEqual(log, ['start a1', 'start c1'], 'a2 waits for a1; cy does not');
  assert.deepEqual([...map.keys()], ['ann', 'cy']);
  gates.shift()?.(); // a1 fails
  await settle();
  assert.deepEqual(log.slice(2), ['end a1', 'failed a1', 'start a2'], 'a failure does not stop the queue');
  gates.shift()?.(); // c1
  await settle();
  assert.deepEqual([...map.keys()], ['ann'], 'cy is forgotten once its last job is done');
  const a3 = serial(map, 'ann', job('a3'), failed); // joins the queue under way
  gates.shift()?.(); // a2
  await a2;
  assert.ok(map.has('ann'), 'a3 still to run');
  gates.shift()?.(); // a3
  await a3;
  assert.equal(map.size, 0);
  assert.deepEqual(log.slice(-4), ['end c1', 'end a2', 'start a3', 'end a3']);
});

/**
 * A chat chunk that records what the page asks of it; gate holds its
 * load back until opened.
 */
function fakeChat() {
  /** @type {() => void} */
  let open = () => {};
  const f = {
    loads: 0,
    /** @type {any[]} what the chat was told, in order (peersChanged left out: it comes often; fresh apart) */
    calls: [],
    /** @type {string[]} the peers fresh() was told of ('*': everyone) */
    fresh: [],
    /** @type {any} the options the page gave */
    o: null,
    gate: Promise.resolve(),
    hold() { f.gate = new Promise((ok) => { open = () => ok(undefined); }); },
    release: () => open(),
    importChat: async () => {
      f.loads++;
      await f.gate;
      return {
        /** @param {any} o */
        chat: (o) => {
          f.o = o;
          const rec = (/** @type {string} */ n) => (/** @type {any[]} */ ...a) => { f.calls.push([n, ...a]); };
          return {
            take: rec('take'), key: rec('key'), gone: rec('gone'), removed: rec('removed'), stop: rec('stop'), peersChanged() {},
            fresh: (/** @type {string | undefined} */ id) => { f.fresh.push(id ?? '*'); },
          };
        },
      };
    },
  };
  return f;
}

/** A chat message on the channel. @param {any} p @param {string} id @param {string} c */
function chatFrom(p, id, c) {
  p.verto.h.onEvent({ eventChannel: 'room', userid: id + '@example.org', eventData: encodeBody({ t: 'chat', k: 'k1', iv: 'aXY=', c }) });
}

/** The moderation hint on the channel. @param {any} p @param {string} id */
function hint(p, id) {
  p.verto.h.onEvent({ eventChannel: 'room', userid: id + '@example.org', eventData: encodeBody({ t: 'mod' }) });
}

/**
 * A server answering GET modUrl: each answer from the queue (the last
 * one again when it runs out); what was asked is in asked.
 * @param {...any} answers bodies, or {status, retryAfter}
 */
function modServer(...answers) {
  const s = {
    /** @type {{url: string, init: any}[]} */
    asked: [],
    answers,
    /** @param {string} url @param {any} [init] */
    fetch: async (url, init) => {
      s.asked.push({ url, init });
      const a = s.answers.length > 1 ? s.answers.shift() : s.answers[0];
      const status = a.status || 200;
      return /** @type {any} */ ({ status, ok: status < 300, headers: { get: (/** @type {string} */ h) => (h === 'Retry-After' ? a.retryAfter ?? null : null) }, json: async () => a });
    },
  };
  return s;
}

/** Runs the timers due now (those set with a delay of at most ms), as they fire. @param {any} p @param {number} [ms] */
function fire(p, ms = 0) {
  for (const f of [...p.timers]) {
    if (p.delays.get(f) > ms) continue;
    p.timers.splice(p.timers.indexOf(f), 1);
    f();
  }
}

test('chat: loaded by the first chat message from someone listed, and handed it; from strangers and the removed, nothing', async () => {
  const chat = fakeChat();
  const p = await page({ opts: { importChat: chat.importChat, chat: /** @type {any} */ ({ section: {}, storage: null }), removed: ['eeee'] } });
  chatFrom(p, 'zzzz', 'from a stranger');
  announce(p, 'eeee', { name: 'Eve' }); // removed: never listed
  chatFrom(p, 'eeee', 'from the removed');
  await settle();
  assert.equal(chat.loads, 0, 'nothing to show: not loaded');
  assert.deepEqual(p.view.peers, []);
  announce(p, 'aaaa', { name: 'Ann' });
  chatFrom(p, 'aaaa', 'hi');
  await waitFor(() => chat.calls.length);
  assert.equal(chat.loads, 1);
  assert.deepEqual(chat.calls, [['take', 'aaaa', { t: 'chat', k: 'k1', iv: 'aXY=', c: 'hi' }]]);
  // What the chunk is handed.
  assert.equal(chat.o.channelId, 'room');
  assert.equal(chat.o.self, 'bbbb');
  assert.equal(chat.o.canSeal, false, 'no key pair on this page');
  assert.deepEqual(chat.o.peers().map((/** @type {any} */ x) => x.id), ['aaaa']);
  assert.equal(chat.o.name('aaaa'), 'Ann');
  await chat.o.broadcast({ t: 'chat', k: 'k2', iv: 'x', c: 'y' });
  assert.deepEqual(p.verto.broadcasts.at(-1), { ch: 'room', t: 'chat', k: 'k2', iv: 'x', c: 'y' });
  chatFrom(p, 'eeee', 'still removed');
  chatFrom(p, 'aaaa', 'again');
  await waitFor(() => chat.calls.length === 2);
  assert.deepEqual(chat.calls.map((c) => c[2].c), ['hi', 'again']);
});

test('chat: a peer\'s messages wait for the chat to load, in the order they came, its leave behind them', async () => {
  const chat = fakeChat();
  chat.hold();
  const p = await page({ opts: { importChat: chat.importChat, chat: /** @type {any} */ ({ section: {}, storage: null }) } });
  announce(p, 'aaaa', { name: 'Ann' });
  announce(p, 'cccc', { name: 'Cy' });
  chatFrom(p, 'aaaa', 'one');
  chatFrom(p, 'cccc', 'cy');
  chatFrom(p, 'aaaa', 'two');
  announce(p, 'aaaa', { t: 'unavailable' });
  await settle();
  assert.equal(chat.loads, 1, 'one load for all');
  assert.deepEqual(chat.calls, []);
  assert.equal(p.view.peers.length, 2, 'Ann\'s leave waits behind her messages');
  chat.release();
  await waitFor(() => chat.calls.length === 4);
  assert.deepEqual(chat.calls.filter((c) => c[1] === 'aaaa').map((c) => c[0] + (c[2] ? ' ' + c[2].c : '')), ['take one', 'take two', 'gone']);
  assert.deepEqual(p.view.peers.map((x) => x.id), ['cccc']);
});

test('chat: loaded when the field takes the focus, or when this tab kept the channel\'s chat; a failed load is tried again', async () => {
  const chat = fakeChat();
  let fail = true;
  const importChat = () => {
    if (fail) { fail = false; return Promise.reject(new Error('offline')); }
    return chat.importChat();
  };
  const p = await page({ opts: { importChat, chat: /** @type {any} */ ({ section: {}, storage: null }) } });
  await settle();
  assert.equal(chat.loads, 0, 'not at start');
  p.view.act.chat();
  await waitFor(() => p.warnings.some((w) => w.startsWith('channels: chat:')));
  assert.equal(chat.o, null);
  p.view.act.chat(); // focused again
  await waitFor(() => chat.o);
  assert.equal(chat.loads, 1);
  p.view.act.chat();
  await settle();
  assert.equal(chat.loads, 1, 'loaded once');

  for (const [kept, want] of /** @type {const} */ ([['[{"text":"hi"}]', 1], [null, 0]])) {
    const c = fakeChat();
    /** @type {string[]} */
    const keys = [];
    const storage = { getItem: (/** @type {string} */ k) => { keys.push(k); return kept; } };
    await page({ opts: { importChat: c.importChat, chat: /** @type {any} */ ({ section: {}, storage }) } });
    await settle();
    assert.deepEqual(keys, ['channels.chat.room']);
    assert.equal(c.loads, want, String(kept));
  }
});

test('chat keys: taken only sealed; sendKey seals, waits for the relay, and refuses without keys', async () => {
  const chat = fakeChat();
  const p = await page({ sealed: true, opts: { importChat: chat.importChat, chat: /** @type {any} */ ({ section: {}, storage: null }) } });
  const ours = p.verto.broadcasts[0].key;
  const ann = await Sealer.create();
  announce(p, 'aaaa', { name: 'Ann', key: ann.pub });
  const ck = { t: 'ck', k: 'k1', key: 'a2V5' };
  direct(p, 'aaaa', ck); // unsealed: no key
  direct(p, 'aaaa', { s: await ann.seal(ours, ck, 'aaaa>bbbb') });
  await waitFor(() => chat.calls.length);
  assert.deepEqual(chat.calls, [['key', 'aaaa', ck]], 'only the sealed one');
  assert.equal(chat.loads, 1);
  assert.equal(chat.o.canSeal, true);

  // Sending: sealed, and resolved only once the relay took it.
  /** @type {(v: any) => void} */
  let accept = () => {};
  p.verto.answer = () => new Promise((ok) => { accept = ok; });
  let done = false;
  const sent = chat.o.sendKey('aaaa', { t: 'ck', k: 'mine', key: 'cmF3' }).then(() => { done = true; });
  await waitFor(() => p.verto.sent.length);
  await settle();
  assert.equal(done, false, 'handed to the socket, not yet taken by the relay');
  const m = p.verto.sent[0].m;
  assert.ok(m.s && m.s.ct, 'sealed');
  assert.deepEqual(await ann.open(ours, m.s, 'bbbb>aaaa'), { t: 'ck', k: 'mine', key: 'cmF3' });
  accept({});
  await sent;
  assert.equal(done, true);
  // Refused by the relay: rejected.
  p.verto.answer = null;
  p.verto.refuse = () => Object.assign(new Error('Rate limit exceeded'), { code: -32010 });
  await assert.rejects(chat.o.sendKey('aaaa', { t: 'ck', k: 'mine', key: 'cmF3' }), /Rate limit/);
  // A peer without a key: never sent unsealed.
  p.verto.refuse = () => null;
  announce(p, 'cccc', { name: 'Cy' });
  await waitFor(() => p.view.peers.length === 2);
  const before = p.verto.sent.length;
  await assert.rejects(chat.o.sendKey('cccc', { t: 'ck', k: 'mine', key: 'cmF3' }), /no keys/);
  assert.equal(p.verto.sent.length, before, 'nothing sent');
});

test('chat keys: on a page without keys, none is taken or sent', async () => {
  const chat = fakeChat();
  const p = await page({ opts: { importChat: chat.importChat, chat: /** @type {any} */ ({ section: {}, storage: null }) } });
  announce(p, 'aaaa', { name: 'Ann' });
  direct(p, 'aaaa', { t: 'ck', k: 'k1', key: 'a2V5' });
  direct(p, 'aaaa', { t: 'offer', call: 'c1' }); // behind it: once this rings, the key was seen
  await waitFor(() => p.ringer.ringing);
  assert.deepEqual(chat.calls, []);
  p.view.act.chat();
  await waitFor(() => chat.o);
  await assert.rejects(chat.o.sendKey('aaaa', { t: 'ck', k: 'x', key: 'eQ==' }), /no keys/);
  assert.ok(!p.verto.sent.some((s) => s.m.t === 'ck'));
});

test('chat keys: an ask for ours (ckq) goes to the chat only sealed, from someone listed', async () => {
  const chat = fakeChat();
  const p = await page({ sealed: true, opts: { importChat: chat.importChat, chat: /** @type {any} */ ({ section: {}, storage: null }) } });
  const ours = p.verto.broadcasts[0].key;
  const ann = await Sealer.create(), zed = await Sealer.create();
  announce(p, 'aaaa', { name: 'Ann', key: ann.pub });
  direct(p, 'aaaa', { t: 'ckq' }); // unsealed
  direct(p, 'zzzz', { s: await zed.seal(ours, { t: 'ckq' }, 'zzzz>bbbb') }); // not listed
  direct(p, 'aaaa', { s: await ann.seal(ours, { t: 'ckq' }, 'aaaa>bbbb') });
  await waitFor(() => chat.calls.length);
  await settle();
  assert.deepEqual(chat.calls, [['key', 'aaaa', { t: 'ckq' }]]);
  assert.equal(chat.loads, 1);
});

test('chat keys: handed again to each peer who answers our hello (after our reconnect, everyone present)', async () => {
  const chat = fakeChat();
  const p = await page({ opts: { importChat: chat.importChat, chat: /** @type {any} */ ({ section: {}, storage: null }) } });
  announce(p, 'aaaa', { name: 'Ann' });
  p.view.act.chat();
  await waitFor(() => chat.o);
  assert.deepEqual(chat.fresh, []);
  // Our connection dropped and came back: the hello goes out again.
  p.verto.state = 'connecting';
  p.verto.h.onState('connecting');
  p.verto.state = 'ready';
  p.verto.h.onState('ready');
  p.verto.h.onReady();
  await waitFor(() => p.verto.broadcasts.filter((b) => b.hello).length === 2);
  // Ann lists us again (she had dropped us): what she got before may be lost.
  direct(p, 'aaaa', { t: 'here', name: 'Ann', inst: 'aaaa-1' });
  direct(p, 'cccc', { t: 'here', name: 'Cy' }); // one new to us
  await waitFor(() => chat.fresh.length === 2);
  assert.deepEqual(chat.fresh, ['aaaa', 'cccc']);
  assert.deepEqual(p.view.peers.map((x) => x.id), ['aaaa', 'cccc']);
});

test('moderation: a hint fetches the state at once, then at most once per 3 s, hints meanwhile folding into one', async () => {
  const srv = modServer({ removed: [], locked: false, you: '' });
  const p = await page({ opts: { fetch: srv.fetch, modUrl: '/c/room/moderation' } });
  announce(p, 'aaaa', { name: 'Ann' });
  hint(p, 'zzzz'); // not listed: ignored
  await settle();
  fire(p);
  assert.equal(srv.asked.length, 0);
  hint(p, 'aaaa');
  await settle();
  fire(p);
  assert.equal(srv.asked.length, 1, 'at once');
  assert.equal(srv.asked[0].url, '/c/room/moderation');
  p.clock.pass(1000);
  hint(p, 'aaaa');
  hint(p, 'aaaa');
  hint(p, 'aaaa');
  await settle();
  fire(p, 1999);
  assert.equal(srv.asked.length, 1, 'not within 3 s of the last');
  const waits = p.timers.filter((f) => p.delays.get(f) === 2000);
  assert.equal(waits.length, 1, 'one fetch waits, 3 s after the last');
  p.clock.pass(2000);
  fire(p, 2000);
  assert.equal(srv.asked.length, 2, 'the hints meanwhile: one fetch');
  await settle();
  fire(p, 3000);
  assert.equal(srv.asked.length, 2, 'and no more');
});

test('moderation: too many asks (429) are asked again after Retry-After; failures are logged', async () => {
  const srv = modServer({ status: 429, retryAfter: '7' }, { status: 500 }, { removed: [], locked: true });
  const p = await page({ opts: { fetch: srv.fetch, modUrl: '/m' } });
  announce(p, 'aaaa', { name: 'Ann' });
  hint(p, 'aaaa');
  await settle();
  fire(p);
  await settle();
  assert.equal(srv.asked.length, 1);
  assert.deepEqual(p.timers.map((f) => p.delays.get(f)).filter((ms) => ms === 7000), [7000], 'asked again after 7 s');
  p.clock.pass(7000);
  fire(p, 7000);
  await settle();
  assert.equal(srv.asked.length, 2);
  assert.ok(p.warnings.some((w) => w.startsWith('channels: moderation state:') && w.includes('HTTP 500')), p.warnings.join('\n'));
  assert.equal(p.view.locked, false, 'an error answer is not applied');
  p.clock.pass(3000);
  hint(p, 'aaaa');
  await settle();
  fire(p);
  await waitFor(() => p.view.locked);
});

test('moderation: someone else removed is banned: off the list, their call ended, the chat told; the lock shown', async () => {
  const chat = fakeChat();
  const srv = modServer({ removed: ['aaaa'], locked: true, you: '' });
  const p = await page({ opts: { fetch: srv.fetch, modUrl: '/m', importChat: chat.importChat, chat: /** @type {any} */ ({ section: {}, storage: null }) } });
  announce(p, 'aaaa', { name: 'Ann' });
  announce(p, 'cccc', { name: 'Cy' });
  chatFrom(p, 'aaaa', 'hi'); // loads the chat
  p.view.act.call('aaaa');
  await waitFor(() => p.calls.length && chat.calls.length);
  p.calls[0].state = 'in call'; // a call under way
  hint(p, 'cccc');
  await settle();
  fire(p);
  await waitFor(() => p.view.peers.length === 1);
  assert.deepEqual(p.view.peers.map((x) => x.id), ['cccc']);
  assert.equal(p.calls[0].state, 'idle', 'the call with her ended');
  assert.deepEqual(chat.calls.slice(1), [['removed', 'aaaa']], 'the chat re-keys without her');
  assert.equal(p.view.locked, true);
  // From now on she is ignored: announcements, chat, calls, hints.
  announce(p, 'aaaa', { name: 'Ann', hello: true });
  chatFrom(p, 'aaaa', 'still here?');
  direct(p, 'aaaa', { t: 'here', name: 'Ann' });
  direct(p, 'aaaa', { t: 'offer', call: 'c9' });
  hint(p, 'aaaa');
  await settle();
  fire(p, 3000);
  assert.deepEqual(p.view.peers.map((x) => x.id), ['cccc']);
  assert.equal(p.calls.length, 1, 'no call from her');
  assert.equal(chat.calls.length, 2, 'nothing more to the chat');
  assert.equal(srv.asked.length, 1, 'her hint fetches nothing');
  assert.ok(!p.verto.sent.some((s) => s.to === 'aaaa' && s.m.t === 'here'), 'her hello is not answered');
  // Told again (the next fetch): she is not removed twice.
  p.clock.pass(3000);
  hint(p, 'cccc');
  await settle();
  fire(p);
  await waitFor(() => srv.asked.length === 2);
  await settle();
  assert.equal(chat.calls.length, 2, 'the chat is re-keyed once');
});

test('moderation: a removal that ended or was undone lifts the ban: the next announcement lists the peer again', async () => {
  const srv = modServer({ removed: ['aaaa', 'cccc', 'eeee'] }, { removed: ['cccc'] });
  const p = await page({ opts: { fetch: srv.fetch, modUrl: '/m', removed: ['eeee'] } });
  announce(p, 'aaaa', { name: 'Ann' });
  announce(p, 'dddd', { name: 'Di' });
  await waitFor(() => p.view.peers.length === 2);
  hint(p, 'dddd');
  await settle();
  fire(p);
  await waitFor(() => p.view.peers.length === 1);
  assert.deepEqual([...p.presence.banned].sort(), ['aaaa', 'cccc', 'eeee']);
  p.clock.pass(3000);
  hint(p, 'dddd');
  await settle();
  fire(p);
  await waitFor(() => srv.asked.length === 2);
  await waitFor(() => !p.presence.banned.has('aaaa'));
  assert.deepEqual([...p.presence.banned].sort(), ['cccc'], 'the config\'s removal ended too');
  announce(p, 'aaaa', { name: 'Ann' });
  announce(p, 'cccc', { name: 'Cy' });
  announce(p, 'eeee', { name: 'Eve' });
  await waitFor(() => p.view.peers.length === 3);
  await settle();
  assert.deepEqual(p.view.peers.map((x) => x.id), ['aaaa', 'dddd', 'eeee']);
});

test('moderation: a manager\'s own removal lifts no other ban', async () => {
  /** @type {any[]} */
  const made = [];
  const importModerate = async () => ({ moderate: (/** @type {any} */ o) => { made.push(o); } });
  const p = await page({ opts: { importModerate, moderate: true, removed: ['eeee'] } });
  await waitFor(() => made.length);
  made[0].apply({ removed: ['aaaa'], locked: false });
  assert.deepEqual([...p.presence.banned].sort(), ['aaaa', 'eeee']);
});

test('moderation: a banned peer\'s hello waiting for its answer is not answered', async () => {
  const srv = modServer({ removed: ['aaaa'] });
  const p = await page({ opts: { fetch: srv.fetch, modUrl: '/m' } });
  const answers = () => p.verto.sent.filter((s) => s.to === 'aaaa' && s.m.t === 'here').length;
  for (let i = 0; i < 4; i++) announce(p, 'aaaa', { name: 'Ann', hello: true });
  await waitFor(() => answers() === 3); // her budget: the 4th waits a second
  announce(p, 'cccc', { name: 'Cy' });
  hint(p, 'cccc');
  await settle();
  fire(p); // the fetch, due now (not the answer, a second away)
  await waitFor(() => p.presence.banned.has('aaaa'));
  p.clock.pass(1000);
  fire(p, 1000);
  await settle();
  assert.equal(answers(), 3, 'the 4th is not sent');

  // The same without the ban: the 4th goes a second later (so the check above can fail).
  const q = await page();
  for (let i = 0; i < 4; i++) announce(q, 'aaaa', { name: 'Ann', hello: true });
  await waitFor(() => q.verto.sent.length === 3);
  q.clock.pass(1000);
  fire(q, 1000);
  await waitFor(() => q.verto.sent.length === 4);
});

test('moderation: this page removed: calls end without a word, Verto stops for good, the chat stops', async () => {
  const chat = fakeChat();
  const srv = modServer({ removed: ['bbbb'], locked: false, you: 'removed' });
  const p = await page({ opts: { fetch: srv.fetch, modUrl: '/m', importChat: chat.importChat, chat: /** @type {any} */ ({ section: {}, storage: null }) } });
  announce(p, 'aaaa', { name: 'Ann' });
  direct(p, 'aaaa', { t: 'offer', call: 'c1' });
  await waitFor(() => p.ringer.ringing);
  p.view.act.accept();
  await waitFor(() => p.calls[0].state === 'in call');
  const sent = p.verto.sent.length;
  hint(p, 'aaaa');
  await settle();
  fire(p);
  await waitFor(() => p.view.conn === 'removed');
  assert.equal(p.verto.state, 'removed', 'stopped for good');
  assert.equal(p.calls[0].state, 'idle');
  assert.equal(p.verto.sent.length, sent, 'no close sent: the socket is gone');
  await waitFor(() => chat.calls.length);
  assert.deepEqual(chat.calls, [['stop', 'You were removed from this channel']], 'loaded to say so, and stopped');
  assert.deepEqual(p.view.warnings, [], 'no "could not reach"');
});

test('moderation: a socket closed as removed stops at once, then fetches why; a failed login fetches too', async () => {
  const chat = fakeChat();
  const srv = modServer({ removed: ['bbbb'], locked: false, you: 'removed' });
  const p = await page({ opts: { fetch: srv.fetch, modUrl: '/m', importChat: chat.importChat, chat: /** @type {any} */ ({ section: {}, storage: null }) } });
  announce(p, 'aaaa', { name: 'Ann' });
  p.view.act.call('aaaa');
  await waitFor(() => p.calls.length);
  p.verto.halt('removed'); // what Verto does on close code 4003
  assert.equal(p.calls[0].state, 'idle', 'at once, before any fetch');
  await waitFor(() => chat.calls.length);
  assert.deepEqual(chat.calls, [['stop', 'You were removed from this channel']]);
  fire(p);
  await waitFor(() => srv.asked.length === 1);

  const locked = modServer({ removed: [], locked: true, you: 'locked' });
  const q = await page({ opts: { fetch: locked.fetch, modUrl: '/m' } });
  q.verto.state = 'login failed';
  q.verto.h.onState('login failed', 'Authentication Failure');
  fire(q);
  await waitFor(() => q.view.locked);
  assert.equal(locked.asked.length, 1);
  assert.equal(q.verto.state, 'login failed', 'locked out, not removed: it keeps trying, slowly');

  // Logged in, but the channel refused: the same.
  const refused = modServer({ removed: [], locked: true, you: 'locked' });
  const r = await page({ opts: { fetch: refused.fetch, modUrl: '/m' } });
  r.verto.subscribe = () => Promise.reject(Object.assign(new Error('refused'), { data: { unauthorizedChannels: ['room'] } }));
  r.verto.h.onReady();
  await waitFor(() => r.timers.some((f) => r.delays.get(f) <= 0)); // the fetch, due now
  fire(r);
  await waitFor(() => r.view.locked);
  assert.equal(refused.asked.length, 1);
});

test('moderation: the state the page was made with applies at start', async () => {
  const p = await page({ opts: { removed: ['aaaa'], locked: true } });
  assert.equal(p.view.locked, true);
  announce(p, 'aaaa', { name: 'Ann', hello: true });
  announce(p, 'cccc', { name: 'Cy' });
  await waitFor(() => p.view.peers.length);
  await settle();
  assert.deepEqual(p.view.peers.map((x) => x.id), ['cccc']);
  const q = await page();
  assert.equal(q.view.locked, false);
});

test('managers: moderate.js is loaded at start and handed the view, fetch and what applies a change', async () => {
  /** @type {any[]} */
  const made = [];
  const importModerate = async () => ({ moderate: (/** @type {any} */ o) => { made.push(o); } });
  const none = await page({ opts: { importModerate } });
  await settle();
  assert.equal(made.length, 0, 'not for others');
  const srv = modServer({});
  const p = await page({ opts: { importModerate, moderate: true, fetch: srv.fetch } });
  await waitFor(() => made.length);
  const o = made[0];
  assert.equal(o.channelId, 'room');
  assert.equal(o.fetch, srv.fetch);
  assert.equal(o.view, p.view);
  announce(p, 'aaaa', { name: 'Ann' });
  await waitFor(() => p.view.peers.length);
  o.apply({ removed: ['aaaa'], locked: true });
  assert.deepEqual(p.view.peers, []);
  assert.equal(p.view.locked, true);
  await o.broadcast({ t: 'mod' });
  assert.deepEqual(p.verto.broadcasts.at(-1), { ch: 'room', t: 'mod' });
  assert.equal(none.verto.broadcasts.length, 1);
});

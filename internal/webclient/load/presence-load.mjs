// Presence load: N copies of the channel page's own client in one channel,
// each a real controller() over a real Verto on a real WebSocket to the
// hub, importing the shipped modules (../static) unmodified and assembled
// as channel.js assembles them. What stands in for the browser: a view
// that only watches the people list, a silent ringer, no STUN/TURN, no
// media (no calls are made), localStorage as a Map per member, and one
// source address per member on 127.0.0.0/8. Keys are real (Sealer.create,
// Web Crypto), so announcements are as large as a browser's.
//
//   node --experimental-websocket presence-load.mjs CONFIG.json
//
// CONFIG (the Go benchmark in this directory writes it):
//   {"url": "ws://127.0.0.1:8080/verto", "channel": "<uuid>",
//    "members":   [{"id", "password"}, ...],  N clients, up for the whole run
//    "newcomers": [{"id", "password"}, ...],  fresh clients, one per join
//    "attackers": [{"id", "password"}, ...],  the hostile identities (4)
//    "options":   {...}}                       see DEFAULTS below
//
// Phases, in order: members join (spread over rampSeconds, so their
// heartbeats are spread as in a channel that filled over time) until each
// lists all others; the steady window (frames/s); joins (each page's
// heartbeat timer is held for these, so the channel is quiet: the frames
// between a newcomer's start and the next quietMs of silence are its
// join, those after its goodbye its leave); newcomers, reloads and second
// tabs, each timed until it lists everyone present; then the attacker (raw
// Verto clients, several identities from one address, hellos with a new
// inst as often as the hub accepts them) and the same windows under it.
//
// The page a listing run times runs in a worker thread of its own, like a
// browser tab on a CPU of its own: on the main thread it would wait for the
// load tool to work through what the N other pages received first (with
// the committed protocol, a join made the main thread take ~90,000 frames
// at N = 300, seconds of work that N browsers share). A reloaded page stays
// in its worker.
//
// Counted: verto.event and verto.info frames received (what presence
// costs), and their bytes on the wire (payload and WebSocket header);
// replies are not counted. stdout carries JSON lines: {"mark": "steady:start"}
// and the like at the edges of the measured windows (the Go benchmark
// reads the hub's CPU time there), then {"result": {...}}. Progress goes
// to stderr.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import { controller } from '../static/controller.js';
import { Presence } from '../static/presence.js';
import { Verto, keptSessid } from '../static/verto.js';
import { Sealer, cryptoAvailable, encodeBody, decodeBody, randomId } from '../static/codec.js';
import { every as everyMs } from '../static/media.js';

const DEFAULTS = (/** @type {number} */ n) => ({
  rampSeconds: Math.min(30, Math.max(2, n / 10)), // members join over this long
  convergeSeconds: 60, // most to wait until every member lists every other
  settleSeconds: 5, // after that, before the steady window
  steadySeconds: 30,
  joins: 3, // join-cost runs (heartbeats held)
  quietMs: 1000, // this long without a frame is quiet
  newcomers: 5, // listing runs of each kind
  reloads: 20,
  tabs: 5,
  reloadsAgain: 5, // reloads of a page reloaded reloadAgainMs before
  reloadAgainMs: 5000,
  gapMs: 3000, // between listing runs
  listCapMs: 10000, // a run not done by then counts as missed
  attack: true, // false: no attacker phase
  attackWarmupSeconds: 12, // the attacker runs this long before its window
  attackSteadySeconds: 30,
  attackNewcomers: 5,
  attackReloads: 10,
  attackIntervalMs: 100, // each identity tries a hello this often
  // Identity k starts k × this late, so that their hellos fall in different
  // windows of a per-peer limit on answers (the committed protocol answered
  // each peer's hello once per 10 s: 4 identities 2.5 s apart each make
  // every member answer every 2.5 s; started together, one answer serves
  // all four).
  attackStaggerMs: 2500,
  memberNet: '127.1', // member i at 127.1.(i / 250).(1 + i % 250)
  newcomerNet: '127.2',
  attackerAddr: '127.3.0.1',
});

/**
 * @typedef {{id: string, password: string}} Client
 * @typedef {{url: string, channel: string, members: Client[], newcomers?: Client[], attackers?: Client[], options?: object}} Config
 * @typedef {ReturnType<typeof DEFAULTS>} Options
 */

// Meters: one row of shared memory per thread (see Meter).
const FIELDS = 9; // frames, events, infos, bytes, other, otherBytes, sent, sentBytes, last
const ROWS = 512;

/** @type {{url: string, channel: string, opt: Options, shared: SharedArrayBuffer, control: SharedArrayBuffer}} */
const ctx = isMainThread ? mainContext() : workerData.ctx;
const { opt } = ctx;
const now = () => performance.timeOrigin + performance.now(); // the same clock in every thread
const sleep = (/** @type {number} */ ms) => new Promise((ok) => setTimeout(ok, ms));
const RATE_LIMITED = -32010;
const noop = () => {};

function mainContext() {
  /** @type {Config} */
  const cfg = JSON.parse(readFileSync(process.argv[2] || '/dev/stdin', 'utf8'));
  return {
    url: cfg.url, channel: cfg.channel, cfg,
    opt: { ...DEFAULTS(cfg.members.length), ...(cfg.options || {}) },
    shared: new SharedArrayBuffer(ROWS * FIELDS * 8),
    control: new SharedArrayBuffer(4),
  };
}

// ---- Meters: what sockets received and sent, one row of shared memory
// per thread (each row has one writer), summed by the main thread.

const ATTACKER_ROW = ROWS - 1; // rows 0 … ROWS - 2 are the members' pages
/** Heartbeats are held (skipped) while control[0] is 1: the join runs need quiet. */
const control = new Int32Array(ctx.control);

class Meter {
  /** @param {number} row */
  constructor(row) {
    this.a = new Float64Array(ctx.shared, row * FIELDS * 8, FIELDS);
    /** @type {Record<string, number> | null} frames by kind, while set (main thread only) */
    this.detail = null;
  }

  /** A frame received. @param {string} text */
  take(text) {
    const a = this.a;
    const size = text.length + (text.length < 126 ? 2 : text.length < 65536 ? 4 : 10);
    const i = text.indexOf('"method":"verto.');
    const c = i >= 0 && i < 80 ? text.charCodeAt(i + 16) : 0;
    if (c !== 101 && c !== 105) { // not verto.event / verto.info
      a[4]++;
      a[5] += size;
      return;
    }
    a[0]++;
    a[c === 101 ? 1 : 2]++;
    a[3] += size;
    a[8] = now();
    if (this.detail) {
      const k = kind(text);
      this.detail[k] = (this.detail[k] || 0) + 1;
    }
  }

  /** A frame sent (masked, so 4 bytes more). @param {string} text */
  put(text) {
    this.a[6]++;
    this.a[7] += text.length + (text.length < 126 ? 6 : text.length < 65536 ? 8 : 14);
  }
}

/** Sums rows [from, to). @param {number} from @param {number} to */
function snap(from, to) {
  const all = new Float64Array(ctx.shared);
  const s = { frames: 0, events: 0, infos: 0, bytes: 0, other: 0, otherBytes: 0, sent: 0, sentBytes: 0, last: 0 };
  const keys = /** @type {(keyof typeof s)[]} */ (Object.keys(s));
  for (let r = from; r < to; r++) {
    for (let f = 0; f < 8; f++) s[keys[f]] += all[r * FIELDS + f];
    s.last = Math.max(s.last, all[r * FIELDS + 8]);
  }
  return s;
}
const members = () => snap(0, ATTACKER_ROW);
const attacker = () => snap(ATTACKER_ROW, ROWS);

/** A frame's kind for the breakdown of a join: "event:available+hello", "info:here", …
 * @param {string} text */
function kind(text) {
  try {
    const m = JSON.parse(text);
    if (m.method === 'verto.event') {
      const a = decodeBody(m.params.eventData);
      return 'event:' + a.t + (a.hello ? '+hello' : '');
    }
    const b = decodeBody(m.params.msg.body);
    return 'info:' + (b.s ? 'sealed' : b.t);
  } catch {
    return 'unreadable';
  }
}

// ---- Sockets bound to a source address.

if (typeof WebSocket !== 'function') throw new Error('no global WebSocket: run node with --experimental-websocket (Node 20) or Node 22+');
/** undici's Agent, the class of the global dispatcher (installed once WebSocket is touched). */
const Agent = /** @type {any} */ (globalThis)[Symbol.for('undici.globalDispatcher.1')]?.constructor;
if (typeof Agent !== 'function') throw new Error("cannot find undici's Agent to bind source addresses");

/**
 * A WebSocket class whose sockets come from addr and count into meter.
 * Each message reaches the page as a task of its own, as in a browser:
 * undici hands over the frames that arrive together in one go, without
 * running the promise callbacks between them, so verto.js would take
 * the hub's verto.clientReady before its own login reply's callback had
 * run, ignore it, and wait for its 1.5 s fallback.
 * @param {string} addr @param {Meter} meter
 */
function socketClass(addr, meter) {
  const dispatcher = new Agent({ localAddress: addr });
  return class extends WebSocket {
    /** @type {((ev: MessageEvent) => void) | null} */
    #handler = null;
    /** @param {string} url */
    constructor(url) { super(url, /** @type {any} */ ({ dispatcher })); }
    set onmessage(f) {
      const h = f ? (/** @type {MessageEvent} */ ev) => {
        meter.take(ev.data);
        setImmediate(() => { if (this.#handler === h) f(ev); });
      } : null;
      this.#handler = h;
      super.onmessage = h;
    }
    get onmessage() { return super.onmessage; }
    /** @param {string} s */
    send(s) { meter.put(s); super.send(s); }
  };
}

// ---- Pages: the channel page's assembly (channel.js) with stand-ins.

/** @type {Record<string, number>} warnings the pages logged, by what failed; and "conn: STATE" for each page's changes of connection state */
const warnings = {};
const count = (/** @type {string} */ what) => { warnings[what] = (warnings[what] || 0) + 1; };
const log = {
  warn: (/** @type {any[]} */ ...a) => {
    const what = String(a[0]).replace(/^channels: /, '').replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, 'ID').replace(/:$/, '');
    count(what);
  },
};

/**
 * @typedef {{getItem: (k: string) => string | null, setItem: (k: string, v: string) => void}} Storage
 * @typedef {{id: string, inst: string, addr: string, presence: Presence, verto: Verto,
 *   win: EventTarget, stops: (() => void)[], watch: ((peers: {id: string}[]) => void) | null, started: number}} Page
 */

/**
 * Opens the channel page for client c from addr, its browser's
 * localStorage ls, counting into meter.
 * @param {Client} c @param {string} addr @param {number} n @param {string} inst
 * @param {Storage} ls @param {Meter} meter @returns {Page}
 */
function open(c, addr, n, inst, ls, meter) {
  const key = 'channels.sessid.' + ctx.channel;
  /** @type {any} */
  const page = { id: c.id, inst, addr, presence: new Presence(c.id), verto: null, win: new EventTarget(), stops: [], watch: null, started: now() };
  const view = new Proxy({
    setPeers: (/** @type {{id: string}[]} */ peers) => page.watch?.(peers),
    setConn: (/** @type {string} */ state) => count('conn: ' + state),
  }, { get: (t, k) => (k in t ? t[/** @type {'setPeers'} */ (k)] : noop) });
  controller({
    channelId: ctx.channel,
    self: c.id,
    name: 'Member ' + n,
    inst, // what controller() would pick itself (randomId); known here to check the others
    presence: page.presence,
    ice: { list: () => [], refresh: () => Promise.resolve() },
    keys: cryptoAvailable() ? Sealer.create() : Promise.resolve(null),
    ringer: { start: noop, stop: noop },
    win: /** @type {any} */ (page.win),
    view: () => /** @type {any} */ (view),
    log,
    every: (f, ms) => {
      const stop = everyMs(() => { if (!Atomics.load(control, 0)) f(); }, ms);
      page.stops.push(stop);
      return stop;
    },
    verto: (h) => (page.verto = new Verto({
      url: ctx.url,
      login: c.id,
      passwd: c.password,
      sessid: keptSessid(ls, key),
      onSessid: (s) => ls.setItem(key, s),
      WebSocket: socketClass(addr, meter),
      ...h,
    })),
  }).start();
  return page;
}

/** Closes a page: pagehide (its goodbye), then the socket. @param {Page} p @param {boolean} [goodbye] */
function close(p, goodbye = true) {
  if (goodbye) p.win.dispatchEvent(new Event('pagehide'));
  p.verto.stop();
  for (const s of p.stops) s();
}

/** Waits until cond() holds or ms pass; whether it held. @param {() => boolean} cond @param {number} ms @param {number} [every] */
async function until(cond, ms, every = 20) {
  const end = now() + ms;
  while (!cond()) {
    if (now() > end) return false;
    await sleep(every);
  }
  return true;
}

/**
 * Times page p until it lists all of expected: ms since it opened, or
 * null after listCapMs; and how many it did not list by then.
 * @param {Page} p @param {Set<string>} expected
 */
async function timeListed(p, expected) {
  /** @type {number | null} */
  let listed = null;
  p.watch = (peers) => {
    let n = 0;
    for (const q of peers) if (expected.has(q.id)) n++;
    if (n === expected.size && listed === null) listed = now() - p.started;
  };
  p.watch(p.presence.list());
  await until(() => listed !== null, opt.listCapMs, 5);
  p.watch = null;
  let missing = 0;
  for (const id of expected) if (!p.presence.get(id)) missing++;
  return { listed, missing };
}

// ---- A worker thread: one page, opened, timed and closed as main says.

function worker() {
  const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
  const { client, addr, n, inst, row, storage } = workerData;
  const st = new Map(Object.entries(storage));
  /** @type {Storage} */
  const ls = {
    getItem: (k) => st.get(k) ?? null,
    setItem: (k, v) => { st.set(k, v); port.postMessage({ op: 'storage', k, v }); },
  };
  /** @type {Page | null} */
  let page = null;
  port.on('message', async (m) => {
    if (m.op === 'open') {
      page = open(client, addr, n, inst, ls, new Meter(row));
      port.postMessage({ op: 'listed', ...await timeListed(page, new Set(m.expected)) });
    } else if (m.op === 'knows') {
      const p = /** @type {Page} */ (page);
      const ok = await until(() => p.presence.get(m.id)?.inst === m.inst, m.ms, 5);
      port.postMessage({ op: 'knows', ok });
    } else if (m.op === 'close') {
      if (page) close(page, m.goodbye);
      port.postMessage({ op: 'closed', warnings });
      setTimeout(() => process.exit(0), 200);
    }
  });
  port.postMessage({ op: 'ready' });
}

if (!isMainThread) worker();
else main().catch((e) => {
  process.stderr.write(`presence-load: ${e && e.stack || e}\n`);
  process.exit(1);
});

// ---- The main thread: the members, the runs, the attacker.

async function main() {
  const cfg = /** @type {Config} */ (/** @type {any} */ (ctx).cfg);
  const N = cfg.members.length;
  const t0 = now();
  const say = (/** @type {string} */ s) => process.stderr.write(`presence-load ${((now() - t0) / 1000).toFixed(1)}s: ${s}\n`);
  const mark = (/** @type {string} */ m) => process.stdout.write(JSON.stringify({ mark: m }) + '\n');
  const round = (/** @type {number} */ x, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;
  const mainMeter = new Meter(0);
  const attackMeter = new Meter(ATTACKER_ROW);
  let nextRow = 1;

  /** Checks that a bound socket really comes from its address. */
  async function checkBinding() {
    const addr = opt.memberNet + '.255.254';
    const srv = http.createServer();
    const seen = new Promise((ok) => srv.on('upgrade', (req, sock) => { ok(sock.remoteAddress); sock.destroy(); }));
    await new Promise((ok) => srv.listen(0, '127.0.0.1', () => ok(null)));
    const WS = socketClass(addr, new Meter(ROWS - 2));
    const ws = new WS('ws://127.0.0.1:' + /** @type {any} */ (srv.address()).port + '/');
    ws.onerror = noop;
    const from = await Promise.race([seen, sleep(5000).then(() => 'nothing')]);
    srv.close();
    if (from !== addr) throw new Error(`a socket bound to ${addr} arrived from ${from}: source addresses cannot be spread`);
  }

  /** localStorage of each member's browser. @type {Map<string, Map<string, string>>} */
  const storages = new Map();
  /** @param {string} id @returns {Storage} */
  const storageOf = (id) => {
    let st = storages.get(id);
    if (!st) storages.set(id, st = new Map());
    const m = st;
    return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => { m.set(k, v); } };
  };

  /**
   * A member's live page: here (page) or in a worker thread of its own.
   * @typedef {{id: string, inst: string, addr: string, page?: Page, worker?: Worker}} Handle
   */
  /** @type {Map<string, Handle>} */
  const pages = new Map();
  const memberIndex = new Map(cfg.members.map((c, i) => [c.id, i]));

  /** The next message op from w. @param {Worker} w @param {string} op @returns {Promise<any>} */
  const reply = (w, op) => new Promise((ok, fail) => {
    const f = (/** @type {any} */ m) => {
      if (m.op !== op) return;
      w.off('message', f);
      w.off('error', fail);
      ok(m);
    };
    w.on('message', f);
    w.once('error', fail);
  });

  /** @param {Handle} h @param {boolean} [goodbye] */
  async function closeHandle(h, goodbye = true) {
    if (h.page) close(h.page, goodbye);
    if (h.worker) {
      h.worker.postMessage({ op: 'close', goodbye });
      await reply(h.worker, 'closed');
    }
  }

  /** Whether every live page but id's lists id with inst, within ms. @param {string} id @param {string} inst @param {number} ms */
  async function allKnow(id, inst, ms) {
    const asked = [];
    for (const h of pages.values()) {
      if (h.id === id || !h.worker) continue;
      h.worker.postMessage({ op: 'knows', id, inst, ms });
      asked.push(reply(h.worker, 'knows'));
    }
    const here = [...pages.values()].filter((h) => h.id !== id && h.page).map((h) => /** @type {Page} */ (h.page));
    const ok = await until(() => here.every((p) => p.presence.get(id)?.inst === inst), ms, 5);
    return ok && (await Promise.all(asked)).every((r) => r.ok);
  }

  /** @param {number} i */
  const memberAddr = (i) => `${opt.memberNet}.${Math.floor(i / 250)}.${1 + (i % 250)}`;
  let newcomerSeq = 0;
  const fresh = [...(cfg.newcomers || [])];
  function newcomer() {
    const c = fresh.shift();
    if (!c) throw new Error('out of fresh clients: give the config more newcomers');
    const i = newcomerSeq++;
    return { c, addr: `${opt.newcomerNet}.${Math.floor(i / 250)}.${1 + (i % 250)}`, n: N + i };
  }

  /** Waits for quietMs without a counted frame (at most capMs). */
  const quiet = (capMs = 20000) => until(() => now() - Math.max(members().last, attacker().last) >= opt.quietMs, capMs, 25);

  /** How many (member, other member) pairs are not yet listed (pages here only). */
  function unlisted() {
    let missing = 0;
    for (const h of pages.values()) {
      for (const id of pages.keys()) if (id !== h.id && h.page && !h.page.presence.get(id)) missing++;
    }
    return missing;
  }

  // ---- Windows: counts, the load tool's own CPU and event-loop delay.

  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();

  /** The main thread's CPU (percent of one core) and event-loop delay since at.
   * @param {NodeJS.CpuUsage} cpu @param {number} at */
  function load(cpu, at) {
    const c = process.cpuUsage(cpu);
    return {
      loadCpuPercent: round(((c.user + c.system) / 1e3 / (now() - at)) * 100, 1),
      loopDelayP99Ms: round(loop.percentile(99) / 1e6, 1),
    };
  }

  /** @param {Record<string, number>} a @param {Record<string, number>} b */
  function diff(a, b) {
    /** @type {Record<string, number>} */
    const d = {};
    for (const k in a) d[k] = a[k] - (b[k] || 0);
    return d;
  }

  /** Measures a window of s seconds, marked name:start / name:end. @param {string} name @param {number} s */
  async function window(name, s) {
    const a = members(), b = attacker(), hellos = attack.ok, cpu = process.cpuUsage(), at = now();
    const drops = warnings['conn: reconnecting'] || 0;
    loop.reset();
    mark(name + ':start');
    await sleep(s * 1000);
    mark(name + ':end');
    const secs = (now() - at) / 1000;
    const m = diff(members(), a), x = diff(attacker(), b);
    return {
      seconds: round(secs, 2),
      members: N,
      frames: m.frames,
      framesPerSec: round(m.frames / secs),
      eventsPerSec: round(m.events / secs),
      infosPerSec: round(m.infos / secs),
      bytesPerSec: round(m.bytes / secs),
      reconnects: (warnings['conn: reconnecting'] || 0) - drops, // of the main thread's pages
      attacker: {
        sentPerSec: round(x.sent / secs, 1),
        sentBytesPerSec: round(x.sentBytes / secs),
        receivedPerSec: round((x.frames + x.other) / secs, 1),
        receivedBytesPerSec: round((x.bytes + x.otherBytes) / secs),
        hellosPerSec: round((attack.ok - hellos) / secs, 2),
      },
      ...load(cpu, at),
    };
  }

  /** @param {(number | null)[]} xs times, null for a run not done within listCapMs */
  function summary(xs) {
    const done = /** @type {number[]} */ (xs.filter((x) => x !== null)).sort((a, b) => a - b);
    const all = [...done, ...xs.filter((x) => x === null).map(() => Infinity)];
    /** @param {number} q */
    const pct = (q) => {
      if (!all.length) return null;
      const v = all[Math.min(all.length - 1, Math.ceil(q * all.length) - 1)];
      return v === Infinity ? null : round(v);
    };
    return { runs: xs.length, missed: xs.length - done.length, p50: pct(0.5), p95: pct(0.95), max: done.length === xs.length ? pct(1) : null };
  }

  // ---- Listing runs: how long until a page lists everyone present.

  /** Member ids to reload or reopen, each once before any again (a round-robin over a shuffled list). */
  /** @type {string[]} */
  const order = [];
  let nextPick = 0;
  const pick = () => order[nextPick++ % order.length];

  /** @param {'newcomer'|'reload'|'tab'|'reloadAgain'} what */
  async function run(what) {
    if (what === 'newcomer') {
      const { c, addr, n } = newcomer();
      const r = await reopen(c, addr, n, new Set(pages.keys()), null, 'newcomer');
      await closeHandle(r.h);
      return r;
    }
    const id = pick();
    if (what === 'reloadAgain') {
      // The same page reloaded twice, reloadAgainMs apart; the second is timed.
      const first = await reloadMember(id, 'reload');
      await sleep(first.at + opt.reloadAgainMs - now());
      what = 'reload';
    }
    return reloadMember(id, what);
  }

  /** Reloads member id's page, or opens it in a second tab, timed.
   * @param {string} id @param {'reload'|'tab'} what */
  async function reloadMember(id, what) {
    const old = /** @type {Handle} */ (pages.get(id));
    const c = cfg.members[/** @type {number} */ (memberIndex.get(id))];
    const expected = new Set([...pages.keys()].filter((x) => x !== id));
    // A reload says goodbye and closes; a second tab (same sessid, kept in
    // localStorage) takes over the session, and the hub punts the first.
    const r = await reopen(c, old.addr, /** @type {number} */ (memberIndex.get(id)), expected, old, what);
    if (what === 'tab') await closeHandle(old, false); // punted by now, or closed now without goodbye
    return r;
  }

  /**
   * Opens client c's page in a worker of its own, after closing old for a
   * reload, and times it: until it lists expected, and until all other live
   * pages list it with its inst.
   * @param {Client} c @param {string} addr @param {number} n @param {Set<string>} expected
   * @param {Handle | null} old @param {string} what
   */
  async function reopen(c, addr, n, expected, old, what) {
    const inst = randomId();
    const w = await spawn(c, addr, n, inst);
    if (what === 'reload' && old) await closeHandle(old);
    /** @type {Handle} */
    const h = { id: c.id, inst, addr, worker: w };
    if (old) pages.set(c.id, h);
    const listed = reply(w, 'listed');
    const at = now();
    w.postMessage({ op: 'open', expected: [...expected] });
    const know = allKnow(c.id, inst, opt.listCapMs).then((ok) => (ok ? now() - at : null));
    const [l, known] = await Promise.all([listed, know]);
    return { h, at, listed: l.listed, missing: l.missing, known };
  }

  /** Starts a worker thread for client c's page with inst, ready to open it.
   * @param {Client} c @param {string} addr @param {number} n @param {string} inst */
  async function spawn(c, addr, n, inst) {
    if (nextRow >= ROWS - 2) throw new Error('out of meter rows for worker pages');
    const st = storages.get(c.id) || new Map();
    storages.set(c.id, st);
    const w = new Worker(new URL(import.meta.url), {
      workerData: { ctx: { url: ctx.url, channel: ctx.channel, opt, shared: ctx.shared, control: ctx.control }, client: c, addr, n, inst, row: nextRow++, storage: Object.fromEntries(st) },
    });
    w.on('message', (m) => {
      if (m.op === 'storage') st.set(m.k, m.v);
      if (m.op === 'closed') for (const [k, v] of Object.entries(m.warnings)) warnings[k] = (warnings[k] || 0) + /** @type {number} */ (v);
    });
    w.on('error', (e) => say(`worker for ${c.id}: ${e && e.stack || e}`));
    await reply(w, 'ready');
    return w;
  }

  /** Runs count runs of each kind, gapMs apart. @param {Record<string, number>} counts */
  async function listingRuns(counts) {
    /** @type {Record<string, any>} */
    const out = {};
    for (const [what, count] of Object.entries(counts)) {
      if (!count) continue;
      const cpu = process.cpuUsage(), at = now();
      loop.reset();
      /** @type {(number | null)[]} */
      const listed = [];
      /** @type {(number | null)[]} */
      const known = [];
      /** @type {number[]} */
      const missing = [];
      for (let i = 0; i < count; i++) {
        const r = await run(/** @type {any} */ (what));
        listed.push(r.listed);
        known.push(r.known);
        if (r.missing) missing.push(r.missing);
        await sleep(opt.gapMs);
      }
      out[what] = {
        listsEveryone: summary(listed), listedByEveryone: summary(known),
        // each run's time (null: not within listCapMs), and for those missed, how many were not listed by then
        listsEveryoneMs: listed.map((x) => (x === null ? null : round(x))), unlistedAtCap: missing,
        ...load(cpu, at),
      };
      const o = out[what];
      say(`${what}: lists everyone p50 ${o.listsEveryone.p50} ms, p95 ${o.listsEveryone.p95} ms, missed ${o.listsEveryone.missed}/${count}${missing.length ? ' (' + missing.join(', ') + ' not listed)' : ''}; listed by everyone p95 ${o.listedByEveryone.p95} ms (main thread CPU ${o.loadCpuPercent} %, loop delay p99 ${o.loopDelayP99Ms} ms)`);
    }
    return out;
  }

  // ---- The attacker: raw Verto clients, hellos with a new inst each time.

  const attack = { ok: 0, refused: 0, failed: 0, reconnects: 0, stops: /** @type {(() => void)[]} */ ([]) };

  async function startAttack() {
    const WS = socketClass(opt.attackerAddr, attackMeter);
    let ready = 0;
    for (const [k, c] of (cfg.attackers || []).entries()) {
      const v = new Verto({
        url: ctx.url, login: c.id, passwd: c.password, WebSocket: WS,
        onReady: () => { ready++; },
        onState: (s) => { if (s === 'reconnecting') attack.reconnects++; },
      });
      v.start();
      const hello = () => {
        if (v.state !== 'ready') return;
        v.broadcast(ctx.channel, encodeBody({ t: 'available', name: 'Attacker ' + k, key: '', inst: randomId(), hello: true })).then(
          () => { attack.ok++; },
          (e) => { if (e && e.code === RATE_LIMITED) attack.refused++; else attack.failed++; });
      };
      /** @type {any} */
      let timer = null;
      const begin = setTimeout(() => { timer = setInterval(hello, opt.attackIntervalMs); }, k * opt.attackStaggerMs);
      attack.stops.push(() => { clearTimeout(begin); clearInterval(timer); v.stop(); });
    }
    await until(() => ready >= (cfg.attackers || []).length, 10000);
  }

  // ---- The run.

  await checkBinding();
  say(`${N} members from ${N} addresses on ${opt.memberNet}.0.0/16 joining over ${opt.rampSeconds} s`);
  const rampStart = now();
  for (const [i, c] of cfg.members.entries()) {
    const inst = randomId();
    pages.set(c.id, { id: c.id, inst, addr: memberAddr(i), page: open(c, memberAddr(i), i, inst, storageOf(c.id), mainMeter) });
    await sleep(Math.max(0, rampStart + ((i + 1) * opt.rampSeconds * 1000) / N - now()));
  }
  order.push(...[...pages.keys()].sort(() => Math.random() - 0.5));
  const converged = await until(() => unlisted() === 0, opt.convergeSeconds * 1000, 250);
  const ramp = { seconds: round((now() - rampStart) / 1000, 1), converged, unlistedPairs: unlisted(), frames: members().frames };
  say(`ramp: ${converged ? 'every member lists every other' : ramp.unlistedPairs + ' pairs still unlisted'} after ${ramp.seconds} s, ${ramp.frames} frames`);
  await sleep(opt.settleSeconds * 1000);

  const steady = await window('steady', opt.steadySeconds);
  say(`steady: ${steady.framesPerSec} frames/s, ${round(steady.bytesPerSec / 1e6, 2)} MB/s (main thread CPU ${steady.loadCpuPercent} %, loop delay p99 ${steady.loopDelayP99Ms} ms)`);

  // Joins and leaves, in a channel held quiet; the newcomer is a page of
  // the main thread, whose frames the breakdown by kind reads.
  const joins = [];
  Atomics.store(control, 0, 1);
  for (let i = 0; i < opt.joins; i++) {
    await quiet();
    const { c, addr, n } = newcomer();
    const expected = new Set(pages.keys());
    mainMeter.detail = {};
    const a = members(), cpu = process.cpuUsage();
    const p = open(c, addr, n, randomId(), storageOf(c.id), mainMeter);
    // Over once it lists everyone, everyone lists it, and all is quiet.
    await timeListed(p, expected);
    await allKnow(c.id, p.inst, opt.listCapMs);
    const joinQuiet = await quiet();
    const used = process.cpuUsage(cpu);
    const m = members();
    const joined = { ...diff(m, a), ms: round(m.last - p.started), byKind: mainMeter.detail };
    const cpuMs = round((used.user + used.system) / 1e3); // with the quiet wait, which costs next to nothing
    mainMeter.detail = {};
    const b = members(), left = now();
    close(p);
    await until(() => members().last > left, 2000, 5);
    const leaveQuiet = await quiet();
    const leave = { ...diff(members(), b), byKind: mainMeter.detail };
    mainMeter.detail = null;
    joins.push({
      frames: joined.frames, bytes: joined.bytes, untilQuietMs: joined.ms, byKind: joined.byKind, quiet: joinQuiet,
      loadCpuMs: cpuMs, loadCpuMicrosPerFrame: joined.frames ? round((cpuMs * 1000) / joined.frames, 1) : null,
      leave: { frames: leave.frames, bytes: leave.bytes, byKind: leave.byKind, quiet: leaveQuiet },
    });
    say(`join ${i + 1}: ${joined.frames} frames ${JSON.stringify(joined.byKind)}, the last ${joined.ms} ms after it opened, main thread ${round((cpuMs * 1000) / joined.frames, 1)} µs CPU a frame; leave: ${leave.frames} frames ${JSON.stringify(leave.byKind)}`);
  }
  Atomics.store(control, 0, 0);
  await sleep(opt.gapMs);

  const listing = await listingRuns({ newcomer: opt.newcomers, reload: opt.reloads, tab: opt.tabs, reloadAgain: opt.reloadsAgain });

  /** @type {any} */
  let attacked = null;
  if (opt.attack && (cfg.attackers || []).length) {
    say(`attacker: ${cfg.attackers?.length} identities from ${opt.attackerAddr}, a hello every ${opt.attackIntervalMs} ms each, started ${opt.attackStaggerMs} ms apart`);
    await startAttack();
    await sleep(opt.attackWarmupSeconds * 1000);
    const w = await window('attack', opt.attackSteadySeconds);
    const extra = w.framesPerSec - steady.framesPerSec;
    attacked = {
      ...w,
      ratio: round(w.framesPerSec / steady.framesPerSec, 2),
      // members' extra frames per hello the hub let through, and their extra
      // bytes per byte of the attacker's own traffic (sent and received)
      framesPerHello: w.attacker.hellosPerSec ? round(extra / w.attacker.hellosPerSec) : null,
      amplification: round((w.bytesPerSec - steady.bytesPerSec) / (w.attacker.sentBytesPerSec + w.attacker.receivedBytesPerSec), 1),
    };
    say(`attack: ${w.framesPerSec} frames/s (${attacked.ratio}× steady), ${round(w.bytesPerSec / 1e6, 2)} MB/s, ${w.attacker.hellosPerSec} hellos/s accepted; main thread CPU ${w.loadCpuPercent} %, loop delay p99 ${w.loopDelayP99Ms} ms`);
    attacked.listing = await listingRuns({ newcomer: opt.attackNewcomers, reload: opt.attackReloads });
    attacked.hellos = { ok: attack.ok, refused: attack.refused, failed: attack.failed, reconnects: attack.reconnects };
    for (const s of attack.stops) s();
  }

  for (const h of pages.values()) await closeHandle(h, false);
  const result = { members: N, options: opt, ramp, steady, joins, listing, attack: attacked, warnings };
  process.stdout.write(JSON.stringify({ result }) + '\n');
  await sleep(200);
  process.exit(0);
}

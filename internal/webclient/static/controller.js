// The channel page's routing between signalling, presence, calls, sealing,
// the camera check, the chat and moderation. No DOM: the Verto client, the
// view, the ringer, calls, media devices and timers are handed in, so
// Node's test runner drives it with fakes. (A closure rather than a class: its names then
// minify, which keeps the page within its size budget.)

import { Answers, HEARTBEAT_MS, CONFIRM_MS, cleanName } from './presence.js';
import { encodeBody, decodeBody, bareId, safetyCode, randomId, toBase64, fromBase64 } from './codec.js';
import { getMedia, mediaProblem, missing, every as everyMs } from './media.js';
import { REMOVED } from './view.js'; // the words only: no DOM here

/**
 * @typedef {import('./presence.js').Presence} Presence
 * @typedef {import('./codec.js').Sealer} Sealer
 * @typedef {import('./view.js').Actions} Actions
 * @typedef {import('./media.js').DeviceIds} DeviceIds
 * @typedef {import('./check.js').Preview} Preview
 * @typedef {import('./group.js').Group} Group
 * @typedef {import('./group.js').GroupOptions} GroupOptions
 * @typedef {import('./group.js').CallShow} CallShow
 * @typedef {{
 *   onState: (s: string, detail?: string) => void, onReady: () => void,
 *   onEvent: (p: any) => void, onInfo: (p: any) => void,
 * }} VertoHandlers
 * @typedef {{
 *   state: string, start: () => void, lost: () => void, reconnectNow: () => void, halt: (s: 'removed') => void,
 *   subscribe: (channel: string) => Promise<any>,
 *   broadcast: (channel: string, data: string) => Promise<any>,
 *   info: (to: string, body: string) => Promise<any>,
 * }} VertoLike the part of Verto used here
 * @typedef {{
 *   setConn: (state: string, detail?: string) => void, setNote: (text: string) => void,
 *   setName: (name: string) => void, setPeers: (peers: {id: string, name: string}[], canCall: boolean, arrived?: string[], inCall?: Set<string> | null) => void,
 *   setCall: (show: CallShow | null, secure: string) => void,
 *   setStats: (bytes: number, kbps: number) => void,
 *   setDevices: (list: MediaDeviceInfo[], using: DeviceIds) => void,
 *   setPreview: (state: 'off'|'starting'|'on', stream: MediaStream | null, problem: string) => void,
 *   setLevel: (v: number) => void, warn: (text: string) => void,
 *   setLocked: (on: boolean) => void, announce: (text: string) => void,
 * }} ViewLike the part of View used here
 * @typedef {{
 *   take: (from: string, m: any) => void, key: (from: string, m: any) => void, gone: (id: string) => void,
 *   removed: (id: string) => void, stop: (text: string) => void, peersChanged: () => void,
 *   fresh: (id?: string) => void,
 * }} Chat the chat (chat.js), as the page drives it
 * @typedef {{
 *   section: HTMLElement, subtle?: SubtleCrypto, random: (n: number) => Uint8Array,
 *   storage: Storage | null, win: any,
 * }} ChatEnv the browser's parts the chat is handed (channel.js finds them)
 * @typedef {{removed?: string[], locked?: boolean, you?: string}} Moderation
 *   the channel's moderation state (GET modUrl, or a manager's own change):
 *   removed client ids, whether locked, and whether this page's client is
 *   removed (or, refused at login, shut out by the lock)
 * @typedef {{
 *   channelId: string, self: string, name: string | null, inst?: string,
 *   verto: (h: VertoHandlers) => VertoLike, view: (a: Actions) => ViewLike,
 *   presence: Presence,
 *   ice: {list: () => RTCIceServer[], refresh: () => Promise<void>, policy?: () => RTCIceTransportPolicy},
 *   keys: Promise<Sealer | null>, ringer: {start: (name: string) => void, stop: () => void},
 *   saveName?: (name: string) => void, maxCall?: number, newLink?: GroupOptions['newLink'],
 *   md?: MediaDevices, AC?: typeof AudioContext,
 *   win?: {addEventListener: (type: string, f: () => void) => void},
 *   every?: import('./media.js').Every, timers?: import('./presence.js').Timers, random?: () => number,
 *   log?: {warn: (...a: any[]) => void},
 *   chat?: ChatEnv, importChat?: () => Promise<{chat: (o: any) => Chat}>,
 *   modUrl?: string, removed?: string[], locked?: boolean, moderate?: boolean,
 *   importModerate?: () => Promise<{moderate: (o: import('./moderate.js').ModerateOptions) => void}>,
 *   fetch?: typeof fetch,
 * }} ControllerOptions
 *   chat: what the chat needs of the browser (without its section it
 *   cannot load: that is logged). removed, locked: the moderation
 *   state the page was made with; moderate: this person manages the channel
 *   (moderate.js adds Remove and Lock). importChat, importModerate: the
 *   chunks' loaders (tests hand in their own).
 */

/** Call messages whose loss a person must hear about (candidates are many, and spare). */
const TOLD = ['accept', 'decline', 'close', 'sdp'];
/** The hub's refusal of a request over the sender's budget. */
const RATE_LIMITED = -32010;
/** How many offered call ids a page remembers, to take each offer once. */
export const OFFERS = 256;
/** The moderation state is fetched at most once per this long (hints meanwhile fold into one fetch). */
export const MOD_GAP_MS = 3000;

/**
 * Runs job after the jobs queued before it under key, in order, with
 * failures going to fail; a key whose last job is done is forgotten, so
 * the map holds only peers with work under way.
 * @param {Map<string, Promise<void>>} map @param {string} key
 * @param {() => Promise<void>} job @param {(e: any) => void} fail
 * @returns {Promise<void>}
 */
export function serial(map, key, job, fail) {
  const q = (map.get(key) || Promise.resolve()).then(job).catch(fail).then(() => {
    if (map.get(key) == q) map.delete(key);
  });
  map.set(key, q);
  return q;
}

/**
 * Builds the page's routing; nothing happens until start().
 * @param {ControllerOptions} o @returns {{start: () => void}}
 */
export function controller(o) {
  const { channelId, self, presence } = o;
  const log = o.log || console;
  const every = o.every || everyMs;
  const timers = o.timers || { set: (/** @type {() => void} */ f, /** @type {number} */ ms) => setTimeout(f, ms), clear: (/** @type {any} */ t) => clearTimeout(t) };
  const inst = o.inst || randomId();
  let name = cleanName(o.name, self);
  o.saveName?.(name); // one name across channels
  /** @type {Sealer | null} */
  let sealer = null;
  /** @type {Group | null} the calls, once loaded (the first call loads them) */
  let group = null;
  /** @type {Promise<Group> | undefined} */
  let loadingGroup;
  /** @type {DeviceIds} chosen devices; every call and the camera check use them */
  const devices = {};
  let secureNote = '';
  /** The peers the note on sealing was last made for. */
  let shownPeople = '';
  /** @type {(() => void) | null} */
  let stopStats = null;
  let lastBytes = 0;
  /** @type {any} the camera or microphone error already told, once per call */
  let told = null;
  /** @type {Map<string, Promise<string>>} safety codes by peer key */
  const codes = new Map();
  /** @type {Map<string, string>} the safety code of each peer of a call of several, for its tile */
  const tileCodes = new Map();

  /** @param {string} what @param {any} e */
  const warn = (what, e) => log.warn('channels: ' + what + ':', e);
  /** Logs a failure and tells the person. @param {string} text @param {any} e */
  const fail = (text, e) => {
    warn(text, e);
    view.warn(text);
  };
  const idle = () => !group || group.state === 'idle';

  const keys = o.keys.then((s) => { sealer = s; }, (e) => warn('no key pair, so unsealed', e));

  /** @type {Actions} */
  const act = {
    call: (id) => { placeCall(id).catch((e) => fail('The call could not start', e)); },
    accept: () => group?.accept(),
    decline: () => group?.decline(),
    hangup: () => group?.hangup(),
    mic: () => group?.toggleMic(),
    camera: () => group?.toggleCamera().catch((e) => fail(mediaProblem(e, 'camera'), e)),
    share: () => group?.share().catch((e) => { if (e?.name !== 'NotAllowedError') fail('The screen could not be shared', e); }),
    name: (n) => {
      name = cleanName(n, self);
      o.saveName?.(name);
      view.setName(name);
      announce(false);
    },
    device: (kind, id) => {
      devices[kind] = id;
      if (group && group.local && !idle()) group.useDevice(kind, id).catch((e) => fail(mediaProblem(e, kind === 'audio' ? 'microphone' : 'camera'), e));
      else if (shown) { // the check starts again with it
        preview?.close();
        act.preview(true);
      }
    },
    reconnect: () => verto.start(),
    preview: (on) => {
      want = on;
      if (!on) preview?.close();
      // Loaded on the first request; a check closed while it loads does not open.
      else if (o.md) loadCheck().then((p) => { if (want) return p.open(); }).catch((e) => fail('The camera check failed', e));
    },
    chat: () => { loadChat().catch((e) => warn('chat', e)); },
  };
  const view = o.view(act);

  const verto = o.verto({
    onState: (s, detail) => {
      if (s !== 'ready') {
        answers.drop();
        timers.clear(confirm);
      }
      view.setConn(s, detail);
      refreshPeers();
      if (s === 'removed') {
        // Removed from the channel (the hub closed the socket, or the
        // moderation state says so): every call ends here, without a word
        // to peers this page can no longer reach, and the chat stops.
        group?.links.forEach((_, id) => group?.gone(id, true));
        loadChat().then((c) => c.stop(REMOVED), (e) => warn('chat', e));
        mod(); // for the details
      } else if (s === 'login failed') mod(); // why: removed, or locked out?
    },
    onReady: () => {
      refreshIce();
      verto.subscribe(channelId).then(() => keys).then(() => {
        announce(true);
        group?.recover();
      }, (e) => {
        if (e.data && e.data.unauthorizedChannels) {
          view.setConn('login failed', 'not allowed in this channel');
          mod(); // why: removed, or locked out?
        } else {
          warn('subscribe, so reconnecting', e);
          verto.lost();
        }
      });
    },
    onEvent,
    onInfo,
  });

  // Answered directly: the relay vouches for the sender and carries it only
  // within the channel, and N answers cost N frames, not N broadcasts.
  const answers = new Answers((peer) => {
    // Refused (budget, a busy reader): its next heartbeat lists us there.
    keys.then(() => verto.info(peer, encodeBody({ t: 'here', name, key: sealer?.pub || '', inst }))).catch((e) => warn('answer ' + peer, e));
  }, timers, presence.now);
  /** @type {any} the check, after a reconnect, for peers who left meanwhile */
  let confirm = null;

  /** @type {MediaStream | null} the camera check's stream, while it runs */
  let shown = null;
  /** @type {Preview | null} the camera check, once loaded */
  let preview = null;
  /** @type {Promise<Preview> | undefined} */
  let loading;
  let want = false; // the person's last word: check or not
  /**
   * The camera check, loaded (check.js, a file of its own) the first time
   * a person asks for it: most visits never do. A failed load is tried
   * again on the next request.
   */
  const loadCheck = () => loading ||= import('./check.js').then((m) => preview = m.preview({
    md: /** @type {MediaDevices} */ (o.md), AC: o.AC, devices, every, log, media: getMedia, missing, mediaProblem,
    onChange: (state, stream, problem) => {
      shown = stream;
      view.setPreview(state, stream, problem);
      preview?.show(idle());
      if (stream) listDevices();
    },
    onLevel: (v) => view.setLevel(v),
  }), (e) => {
    loading = undefined;
    throw e;
  });

  view.setName(name);
  if (o.md) view.setPreview('off', null, '');
  else view.setNote('Camera and microphone need this page over https; calls here can only receive.');

  /** Fresh STUN/TURN servers when they expire; the old ones otherwise. */
  function refreshIce() {
    return o.ice.refresh().catch((e) => warn('ICE refresh, old servers kept', e));
  }

  /** Sends m to everyone on the channel. @param {any} m */
  function cast(m) {
    return verto.broadcast(channelId, encodeBody(m));
  }

  /** @param {boolean} hello */
  function announce(hello) {
    if (verto.state !== 'ready') return;
    const at = presence.now();
    // A lost heartbeat is repeated by the next one; a hello the hub's
    // budget refused, once the budget allows.
    cast({ t: 'available', name, key: sealer?.pub || '', inst, hello })
      .then(() => {
        if (!hello) return;
        // Peers still listed from before a reconnect who do not answer
        // this hello left meanwhile.
        timers.clear(confirm);
        confirm = timers.set(() => forget(presence.forgetBefore(at)), CONFIRM_MS);
      }, (e) => {
        warn('announce', e);
        if (hello && e && e.code === RATE_LIMITED) timers.set(() => announce(true), 2000);
      });
  }

  /** Peers found gone by silence. @param {string[]} gone */
  function forget(gone) {
    if (!gone.length) return;
    for (const id of gone) {
      answers.forget(id);
      group?.gone(id, false);
      chat?.gone(id);
    }
    refreshPeers();
  }

  /**
   * @param {string[]} [arrived] peers who just said hello: arrivals, which
   * the view announces (not those who answer ours: they were here before)
   */
  function refreshPeers(arrived) {
    const g = group;
    // In a call, the list adds people to it: while nothing rings and there is room.
    const can = !g || (g.canPlace() && g.size() < g.o.max);
    view.setPeers(presence.list(), verto.state === 'ready' && can, arrived, g && g.state !== 'idle' ? new Set(g.links.keys()) : null);
    chat?.peersChanged();
  }

  /**
   * Messages to one peer leave in the order they were made, sealed when
   * both sides can; sending does not wait for the relay's receipts, nor
   * holds the next message back for them.
   */
  /** @type {Map<string, Promise<void>>} */
  const queues = new Map();
  /**
   * @param {string} to @param {any} m
   * @param {boolean} [sure] only sealed, and the promise tells the relay's
   * answer (rejected: refused, or no keys to seal with); otherwise
   * failures go to undelivered
   * @returns {Promise<any>} once handed to the socket; sure: once the relay took it
   */
  function sendTo(to, m, sure) {
    return new Promise((ok, no) => serial(queues, to, async () => {
      const key = presence.get(to)?.key;
      if (sure && !(sealer && key)) throw Error('no keys to seal with');
      const sent = verto.info(to, encodeBody(sealer && key ? { s: await sealer.seal(key, m, self + '>' + to) } : m));
      if (sure) ok(sent);
      else sent.catch((e) => undelivered(to, m, e));
    }, (e) => sure ? no(e) : undelivered(to, m, e)).then(ok));
  }

  /**
   * A message to a peer was refused (offline, busy, rate-limited) or could
   * not be sealed: logged, and the person told when it changes the call.
   * @param {string} to @param {any} m @param {any} e
   */
  function undelivered(to, m, e) {
    warn('send ' + m.t + ' to ' + to, e);
    const why = 'Could not reach ' + (presence.get(to)?.name || 'the other side') + (e && e.message ? ' (' + e.message + ')' : '');
    if (m.t === 'offer') {
      const l = group?.links.get(to);
      if (l && l.id === m.call) l.end('failed', why, false);
    } else if (TOLD.includes(m.t) && !m.busy) {
      view.warn(why);
    }
  }

  /** @param {any} p a verto.event */
  function onEvent(p) {
    if (p.eventChannel !== channelId && p.subscribedChannel !== channelId) return;
    const from = bareId(p.userid || '');
    let a;
    try { a = decodeBody(p.eventData); } catch (e) {
      warn('announcement from ' + from, e);
      return;
    }
    // In the peer's queue, behind its direct messages: presence changes
    // apply in the order they came, and chat messages wait there for the
    // chat to load.
    serial(inbox, from, async () => {
      // Chat and hints only from a peer listed (never a banned one).
      const t = a?.t, known = presence.get(from);
      if (t === 'mod') known && mod();
      else if (t === 'chat') known && (await loadChat()).take(from, a);
      else took(from, presence.take(from, a));
    }, (e) => warn('announcement from ' + from, e));
  }

  /** @param {string} from @param {import('./presence.js').Outcome} out */
  function took(from, out) {
    if (out.answer) answers.want(from);
    if (out.left) {
      answers.forget(from);
      chat?.gone(from);
    }
    // A call under way outlives a lost signalling connection (media is
    // peer to peer): its own recovery deadline decides; one still ringing
    // ends.
    if (out.restarted || out.left) group?.gone(from, !!out.restarted);
    else if (out.added) group?.seen(from);
    if (out.changed) refreshPeers(out.answer ? [from] : []);
  }

  /** @type {Map<string, Promise<void>>} messages from each peer, in order */
  const inbox = new Map();
  /** @type {Set<string>} ids of the last OFFERS calls offered to this page, oldest first */
  const offers = new Set();
  /** @param {any} p a verto.info */
  function onInfo(p) {
    const msg = p && p.msg;
    if (!msg || typeof msg.body !== 'string') return;
    // The relay sets `from` to the sender's verified id; it is the only identity we trust.
    const from = bareId(msg.from || '');
    if (!from || from === self) return;
    serial(inbox, from, () => receive(from, msg.body), (e) => warn('message from ' + from, e));
  }

  /** @param {string} from @param {string} body */
  async function receive(from, body) {
    let m = decodeBody(body);
    // An answer to our hello: the relay carries it only between members of
    // a common channel, so it lets its sender in. A leave: only ever from
    // the one who left, so it need not be sealed. An answer says its
    // sender lists us now: a chat key it got before that was dropped.
    if (m && (m.t === 'here' || m.t === 'unavailable')) return chat?.fresh(from), took(from, presence.take(from, m, true));
    const peer = presence.admit(from);
    if (!peer) return; // other direct messages only from people known on this channel
    let sealed = false;
    if (m && m.s) {
      if (!sealer || !peer.key) return;
      m = await sealer.open(peer.key, m.s, from + '>' + self);
      sealed = true;
    }
    if (!m || typeof m.t !== 'string') return;
    if (/^ckq?$/.test(m.t)) {
      // A chat key (or the ask for ours) only ever travels sealed: an
      // unsealed one is no key.
      if (sealed) (await loadChat()).key(from, m);
      return;
    }
    if (sealer && peer.key && !sealed) return; // no downgrade once keys are known
    if (m.t === 'offer') {
      // Keys are made per page, so a sealed offer can only be replayed to
      // this page: it is taken once (while among the last OFFERS; bounded so
      // that offers without end cannot fill the page's memory).
      if (typeof m.call !== 'string' || offers.has(m.call)) return;
      if (offers.add(m.call).size > OFFERS) offers.delete(/** @type {string} */ (offers.values().next().value));
      // A page that only receives calls renews expiring TURN credentials
      // here. Awaited before the checks below, so that they see the state
      // after the wait; this peer's next messages wait in its inbox.
      await refreshIce();
      (await loadGroup()).offer(from, m);
      return;
    }
    // Other call messages only ever concern a call that exists.
    if (group && typeof m.call === 'string') await group.receive(from, m);
  }

  /**
   * The note on sealing for a call with these peers: sealed with each, and
   * the safety code of each pair (compared aloud, it shows nobody sits
   * between the two), or not sealed. Codes are made once per peer key.
   * @param {string[]} peers @returns {Promise<string>}
   */
  async function secured(peers) {
    tileCodes.clear();
    if (!peers.length) return secureNote = '';
    let code = '';
    for (const id of peers) {
      const key = presence.get(id)?.key || '';
      if (!sealer || !key) {
        tileCodes.clear();
        return secureNote = 'Signalling is not end-to-end encrypted';
      }
      if (!codes.has(key)) codes.set(key, safetyCode(sealer.pub, key));
      code = await /** @type {Promise<string>} */ (codes.get(key));
      if (peers.length > 1) tileCodes.set(id, code);
    }
    return secureNote = 'Signalling end-to-end encrypted · ' + (peers.length > 1 ? 'each person’s code on their picture' : 'code ' + code);
  }

  /**
   * The calls (group.js and call.js, a file of their own), loaded by the
   * first call placed or offered: a page that never calls never loads
   * them. A failed load is tried again by the next call.
   * @returns {Promise<Group>}
   */
  function loadGroup() {
    return loadingGroup ||= import('./group.js').then((m) => group = new m.Group({
      self, max: o.maxCall || 6, newId: randomId, devices, md: o.md, log, newLink: o.newLink,
      send: sendTo,
      onChange: () => update(),
      notice: (text) => view.warn(text),
      ice: () => ({ servers: o.ice.list(), policy: o.ice.policy?.() }),
      // The camera check's stream when it runs (it is loaded if it ever
      // ran), so that the camera starts once.
      media: async (f) => preview?.take() || getMedia(devices, f, o.md),
      display: o.md?.getDisplayMedia ? () => /** @type {MediaDevices} */ (o.md).getDisplayMedia({ video: true, audio: false }) : undefined,
      known: (p) => !!presence.get(p),
      name: (p) => presence.get(p)?.name || 'Someone',
    }), (e) => {
      loadingGroup = undefined;
      throw e;
    });
  }

  /** @type {Chat | null} the chat, once loaded */
  let chat = null;
  /** @type {Promise<Chat> | undefined} */
  let loadingChat;
  /**
   * The chat (chat.js, a file of its own), loaded when its field takes the
   * focus, a chat message or key arrives, or this tab kept the channel's
   * chat: a visit that never chats never loads it. After the key pair, so
   * that it knows whether it can seal. A failed load (or a page without
   * the chat's section) is tried again by the next of those.
   * @returns {Promise<Chat>}
   */
  function loadChat() {
    return loadingChat ||= keys.then(o.importChat || (() => import('./chat.js'))).then((m) => chat = m.chat({
      .../** @type {ChatEnv} */ (o.chat), channelId, self, log, canSeal: !!sealer, b64: { to: toBase64, from: fromBase64 }, now: presence.now,
      peers: () => presence.list(),
      name: (/** @type {string} */ id) => cleanName(presence.get(id)?.name, id),
      // Sealed for that peer only, and done once the relay took it.
      sendKey: (/** @type {string} */ to, /** @type {any} */ m) => sendTo(to, m, true),
      broadcast: cast,
      announce: (/** @type {string} */ t) => view.announce(t),
    }), (e) => {
      loadingChat = undefined;
      throw e;
    });
  }

  const get = o.fetch || fetch;
  /** When the moderation state was last fetched. */
  let modAt = -MOD_GAP_MS;
  /** @type {any} the next fetch, waiting */
  let modWait = null;
  /**
   * Fetches the channel's moderation state (a peer hinted it changed, the
   * login failed, the socket was closed as removed): at once, or once
   * MOD_GAP_MS have passed since the last fetch, asks meanwhile folding
   * into that one; when refused as too many, after Retry-After. Failures
   * are logged: the next hint tries again.
   * @param {number} [ms] how long to wait
   */
  function mod(ms = modAt + MOD_GAP_MS - presence.now()) {
    // Due now: a timer of 0 (or less), which is at once.
    modWait ||= timers.set(() => {
      modWait = null;
      modAt = presence.now();
      // Same origin, the session cookie going with it (fetch's default).
      get(/** @type {string} */ (o.modUrl)).then(async (r) => {
        // Seconds; none (null) or a date (NaN): the usual gap.
        if (r.status === 429) return mod(1000 * /** @type {any} */ (r.headers.get('Retry-After')) || MOD_GAP_MS);
        if (!r.ok) throw Error('HTTP ' + r.status);
        moderated(await r.json(), true);
      }).catch((e) => warn('moderation state', e));
    }, ms);
  }

  /**
   * Applies the moderation state: bans the newly removed (dropped from the
   * list, no answer to their hello, their calls ended, their messages
   * ignored, the chat re-keyed without them); with the whole state (all,
   * as fetched), lifts the bans of those no longer removed (ended, or
   * undone): their next announcement lists them again. Shows whether the
   * channel is locked; stops the page if its own client was removed.
   * @param {Moderation} s @param {boolean} [all] s.removed is every
   * removal (not a manager's one change)
   */
  function moderated(s, all) {
    const out = s.removed || [];
    for (const id of out) {
      if (presence.banned.has(id)) continue;
      presence.ban(id);
      answers.forget(id);
      group?.gone(id, true);
      chat?.removed(id);
    }
    // presence.banned holds moderation's bans only (the page's config's
    // included): those the server no longer lists are lifted.
    if (all) for (const id of presence.banned) out.includes(id) || presence.unban(id);
    refreshPeers();
    view.setLocked(!!s.locked);
    if (s.you === 'removed') verto.halt('removed');
  }
  moderated(o);
  if (o.moderate) {
    (o.importModerate || (() => import('./moderate.js')))().then((m) => m.moderate({
      channelId, view: /** @type {any} */ (view), fetch: get, apply: moderated, broadcast: cast, log,
    })).catch((e) => warn('moderation tools', e));
  }

  /** @param {string} peer */
  async function placeCall(peer) {
    await refreshIce();
    const g = await loadGroup();
    if (!g.canPlace()) return;
    const why = g.place(peer);
    if (why) view.warn(why);
  }

  /** Lists cameras and microphones (named once allowed), marking those in use. */
  function listDevices() {
    /** @type {DeviceIds} */
    const using = {};
    for (const t of (group?.local || shown)?.getTracks() || []) using[/** @type {'audio'|'video'} */ (t.kind)] = t.getSettings().deviceId;
    o.md?.enumerateDevices().then((l) => view.setDevices(l, using), (e) => warn('devices', e));
  }

  function update() {
    const g = group;
    if (!g) return;
    const show = g.show();
    for (const t of show.tiles) t.code = tileCodes.get(t.id) || '';
    // The note on sealing follows the people in the call (Web Crypto
    // makes the codes: the note comes a moment after the call shows).
    const people = show.tiles.map((t) => t.id);
    if (people.join() !== shownPeople) {
      shownPeople = people.join();
      secured(people).then(update, (e) => warn('safety codes', e));
    }
    view.setCall(show, show.state === 'idle' ? '' : secureNote);
    if (show.request) o.ringer.start(show.request.name);
    else o.ringer.stop();
    refreshPeers();
    preview?.show(idle());
    const live = show.state === 'in call' || show.state === 'reconnecting';
    if (live && !stopStats) {
      lastBytes = 0;
      view.setStats(0, 0); // not the last call's
      stopStats = every(() => {
        group?.poll().then((n) => {
          view.setStats(n, Math.max(0, Math.round(((n - lastBytes) * 8) / 1000)));
          lastBytes = n;
        }, (e) => warn('stats', e));
      }, 1000);
    } else if (!live && stopStats) {
      stopStats();
      stopStats = null;
    }
    if (g.local) {
      listDevices();
      // Camera or microphone missing in a call: say why, once per call.
      const what = missing(g.local);
      if (g.mediaError && what && told !== g.mediaError) {
        told = g.mediaError;
        fail(mediaProblem(g.mediaError, what), g.mediaError);
      }
    }
  }

  /** Every heartbeat: announce, and forget the silent. */
  function heartbeat() {
    if (verto.state !== 'ready') return;
    announce(false);
    forget(presence.sweep());
  }

  return {
    /** Goes online, keeps announcing, and hangs up when the page goes. */
    start() {
      // No goodbye on the channel: the server says we left when our
      // socket closes (the hub a second later, unless a reload is back by
      // then, so a reload does not flicker; the FreeSWITCH pack at once).
      o.win?.addEventListener('pagehide', () => group?.hangup());
      o.win?.addEventListener('online', () => verto.reconnectNow());
      every(heartbeat, HEARTBEAT_MS * (0.85 + 0.3 * (o.random || Math.random)()));
      // This tab showed the channel's chat before a reload: it shows it again.
      if (o.chat?.storage?.getItem('channels.chat.' + channelId)) act.chat();
      verto.start();
    },
  };
}

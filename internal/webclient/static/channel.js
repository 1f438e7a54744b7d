// Entry point of the channel page: reads the page's configuration and
// wires signalling, presence, calls and the view together.

import { Verto, keptSessid } from './verto.js';
import { Presence, Answers, HEARTBEAT_MS, cleanName } from './presence.js';
import { encodeBody, decodeBody, bareId, Sealer, cryptoAvailable, safetyCode } from './codec.js';
import { Call, newCallId } from './call.js';
import { View, Ringer } from './view.js';

/**
 * @typedef {{channelId: string, clientId: string, password: string, vertoUrl: string,
 *   domain: string, iceServers: RTCIceServer[], topic: string}} ChannelConfig
 */

const NAME_KEY = 'channels.name';
const SESSID_KEY = 'channels.sessid.';

/** The WebSocket URL: absolute as given, or relative to this page. @param {string} u */
function wsURL(u) {
  const url = new URL(u || '/verto', location.href);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  return url.href;
}

/** localStorage, or null where it is off. */
function storage() {
  try { return localStorage; } catch { return null; }
}

/** @param {string} k @returns {string | null} */
function load(k) {
  try { return localStorage.getItem(k); } catch { return null; }
}

/** @param {string} k @param {string} v */
function save(k, v) {
  try { localStorage.setItem(k, v); } catch { /* storage off: the name lasts this page */ }
}

function main() {
  const root = document.getElementById('channel-app');
  const cfgEl = document.getElementById('channel-config');
  if (!root || !cfgEl) return;
  /** @type {ChannelConfig} */
  const cfg = JSON.parse(cfgEl.textContent || '{}');
  const self = cfg.clientId;
  const inst = newCallId();
  const presence = new Presence(self);
  let name = cleanName(load(NAME_KEY), self);
  save(NAME_KEY, name); // keep one name across channels
  /** @type {Sealer | null} */
  let sealer = null;
  /** @type {Call | null} */
  let call = null;
  /** @type {{audio?: string, video?: string}} */
  const devices = {};
  let secureNote = '';
  const keys = (cryptoAvailable() ? Sealer.create() : Promise.resolve(null)).then((s) => { sealer = s; }, () => {});

  const view = new View(root, {
    call: (id) => placeCall(id),
    accept: () => call?.accept(),
    decline: () => call?.decline(),
    hangup: () => call?.hangup(),
    mic: () => call?.toggleMic(),
    camera: () => call?.toggleCamera().catch(() => {}),
    name: (n) => {
      name = cleanName(n, self);
      save(NAME_KEY, name);
      view.setName(name);
      announce(false);
    },
    device: (kind, id) => {
      devices[kind] = id;
      call?.useDevice(kind, id).catch(() => {});
    },
    reconnect: () => verto.start(),
  });
  view.setName(name);
  if (!navigator.mediaDevices) view.setNote('Camera and microphone need this page over https; calls here can only receive.');

  const verto = new Verto({
    url: wsURL(cfg.vertoUrl),
    login: self,
    passwd: cfg.password,
    sessid: keptSessid(storage(), SESSID_KEY + cfg.channelId),
    onSessid: (s) => save(SESSID_KEY + cfg.channelId, s),
    onState: (s, detail) => {
      if (s !== 'ready') answers.drop();
      view.setConn(s, detail);
      refreshPeers();
    },
    onReady: () => {
      verto.subscribe(cfg.channelId).then(() => keys).then(() => announce(true), (e) => {
        if (e.data && e.data.unauthorizedChannels) view.setConn('login failed', 'not allowed in this channel');
        else verto.lost(); // try again on a new connection
      });
    },
    onEvent: (p) => onEvent(p),
    onInfo: (p) => onInfo(p),
  });

  const answers = new Answers(() => announce(false));

  /** @param {boolean} hello */
  function announce(hello) {
    if (verto.state !== 'ready') return;
    answers.drop();
    verto.broadcast(cfg.channelId, encodeBody({ t: 'available', name, key: sealer?.pub || '', inst, hello })).catch(() => {});
  }

  function refreshPeers() {
    view.setPeers(presence.list(), verto.state === 'ready' && (!call || call.state === 'idle'));
  }

  /**
   * Messages to one peer leave in the order they were made, sealed when
   * both sides can; sending does not wait for the relay's receipts.
   */
  const queues = new Map();
  /** @param {string} to @param {any} m @returns {Promise<void>} once handed to the socket */
  function sendTo(to, m) {
    const q = (queues.get(to) || Promise.resolve()).then(async () => {
      const key = presence.get(to)?.key;
      const body = sealer && key ? { s: await sealer.seal(key, m, self + '>' + to) } : m;
      verto.info(to, encodeBody(body)).catch(() => {});
    }).catch(() => {});
    queues.set(to, q);
    return q;
  }

  /** @param {any} p a verto.event */
  function onEvent(p) {
    if (p.eventChannel !== cfg.channelId && p.subscribedChannel !== cfg.channelId) return;
    const from = bareId(p.userid || '');
    let a;
    try { a = decodeBody(p.eventData); } catch { return; }
    const out = presence.take(from, a);
    // Answered on the channel, so that peers enter only through it.
    if (out.answer) answers.want(presence.peers.size);
    if (call && call.peer === from && (a.t === 'unavailable' || out.restarted)) call.end('closed', 'Call ended', false);
    if (out.changed) refreshPeers();
  }

  const inbox = new Map();
  /** @type {Set<string>} ids of the calls offered to this page */
  const offers = new Set();
  /** @param {any} p a verto.info */
  function onInfo(p) {
    const msg = p && p.msg;
    if (!msg || typeof msg.body !== 'string') return;
    // The relay sets `from` to the sender's verified id; it is the only identity we trust.
    const from = bareId(msg.from || '');
    if (!from || from === self) return;
    const q = (inbox.get(from) || Promise.resolve()).then(() => receive(from, msg.body)).catch(() => {});
    inbox.set(from, q);
  }

  /** @param {string} from @param {string} body */
  async function receive(from, body) {
    const peer = presence.admit(from);
    if (!peer) return; // direct messages only from people seen on this channel
    let m = decodeBody(body);
    let sealed = false;
    if (m && m.s) {
      if (!sealer || !peer.key) return;
      m = await sealer.open(peer.key, m.s, from + '>' + self);
      sealed = true;
    }
    if (!m || typeof m.t !== 'string') return;
    if (sealer && peer.key && !sealed) return; // no downgrade once keys are known
    if (m.t === 'offer') {
      // Keys are made per page, so a sealed offer can only be replayed to this page: once.
      if (typeof m.call !== 'string' || offers.has(m.call)) return;
      offers.add(m.call);
      if (call && call.state === 'calling' && call.peer === from && call.id !== m.call) {
        // Both called each other at once: the call from the smaller id wins.
        if (self < from) return;
        call.end('hangup', '', false);
      }
      if (call && call.state !== 'idle') {
        if (call.id !== m.call) sendTo(from, { t: 'decline', call: m.call, busy: true });
        return;
      }
      call = newCall(m.call, from, false);
      secureNote = await note(peer.key);
      update();
      return;
    }
    if (call && call.id === m.call && call.peer === from) await call.handle(m);
  }

  /** @param {string} key @returns {Promise<string>} */
  async function note(key) {
    if (!sealer || !key) return 'Signalling is not end-to-end encrypted';
    return 'Signalling end-to-end encrypted · code ' + await safetyCode(sealer.pub, key);
  }

  /** @param {string} id @param {string} peer @param {boolean} outgoing */
  function newCall(id, peer, outgoing) {
    return new Call({
      id, peer, outgoing, iceServers: cfg.iceServers || [], devices,
      send: (m) => sendTo(peer, m),
      onChange: (c) => { if (c === call) update(); },
    });
  }

  /** @param {string} peer */
  async function placeCall(peer) {
    if (call && call.state !== 'idle') return;
    call = newCall(newCallId(), peer, true);
    secureNote = await note(presence.get(peer)?.key || '');
    call.start();
    update();
  }

  const ringer = new Ringer();
  let statsTimer = 0;
  let lastBytes = 0;
  function update() {
    const c = call;
    view.setCall(c, c ? presence.get(c.peer)?.name || 'Someone' : '', secureNote);
    root?.setAttribute('data-secure', String(secureNote.startsWith('Signalling end')));
    if (c && c.state === 'ringing') ringer.start(presence.get(c.peer)?.name || 'Someone');
    else ringer.stop();
    refreshPeers();
    const live = !!c && (c.state === 'in call' || c.state === 'reconnecting');
    if (live && !statsTimer) {
      lastBytes = 0;
      statsTimer = setInterval(() => {
        call?.received().then((n) => {
          view.setStats(n, Math.round(((n - lastBytes) * 8) / 1000));
          lastBytes = n;
        }, () => {});
      }, 1000);
    } else if (!live && statsTimer) {
      clearInterval(statsTimer);
      statsTimer = 0;
    }
    if (c && c.local) navigator.mediaDevices?.enumerateDevices().then((l) => view.setDevices(l), () => {});
  }

  setInterval(() => {
    if (verto.state !== 'ready') return;
    announce(false);
    const gone = presence.sweep();
    if (gone.length) refreshPeers();
    if (call && gone.includes(call.peer) && call.state !== 'in call' && call.state !== 'reconnecting') call.end('closed', 'Call ended', false);
  }, HEARTBEAT_MS * (0.85 + 0.3 * Math.random()));

  addEventListener('pagehide', () => {
    call?.hangup();
    if (verto.state === 'ready') verto.broadcast(cfg.channelId, encodeBody({ t: 'unavailable' })).catch(() => {});
  });
  addEventListener('online', () => verto.reconnectNow());

  verto.start();
}

main();

// Verto client: JSON-RPC 2.0 over WebSocket, as spoken by FreeSWITCH
// mod_verto and by the Channels hub. No DOM here.

/** Error codes FreeSWITCH uses. */
export const AUTH_REQUIRED = -32000;
export const AUTH_FAILED = -32001;
/** mod_verto's refusal of a sessid that another login holds. */
export const SESSION_IN_USE = 'Session in use';
/** The close code of a socket whose member was removed from the channel
 * (the hub's; see docs/HUB.md): no reconnect would be let in. */
export const REMOVED = 4003;

/** An error reply, whether in `error` or as `code` inside `result`. */
export class VertoError extends Error {
  /** @param {number} code @param {string} message @param {any} [data] */
  constructor(code, message, data) {
    super(message || 'error ' + code);
    this.code = code;
    this.data = data;
  }
}

/**
 * Delay before reconnect attempt n (0-based): at once, then 5 s more per
 * try up to 30 s, each with ±20% jitter (never above 30 s).
 * @param {number} attempt @param {number} [r] a random number in [0, 1)
 * @returns {number} milliseconds
 */
export function backoff(attempt, r = Math.random()) {
  if (attempt <= 0) return Math.floor(r * 250);
  return Math.min(30000, Math.round(Math.min(5000 * attempt, 30000) * (0.8 + 0.4 * r)));
}

/** Keepalive interval: about 45 s with jitter. @param {number} [r] */
export function keepaliveDelay(r = Math.random()) {
  return Math.round(40000 + 10000 * r);
}

/**
 * The error carried by a reply, if any: `error`, or `result.code`
 * (FreeSWITCH puts some errors inside result).
 * @param {any} reply @returns {VertoError | null}
 */
export function replyError(reply) {
  if (reply.error) {
    const e = reply.error;
    return new VertoError(typeof e.code === 'number' ? e.code : 0, e.message || 'refused', e);
  }
  const r = reply.result;
  if (r && typeof r === 'object' && typeof r.code === 'number') return new VertoError(r.code, r.message, r);
  return null;
}

/**
 * A Verto sessid: random (never the client id, which every member sees, so
 * nobody can claim it first), kept in storage under key so a reload or a
 * second tab reattaches and punts the stale connection; per page without
 * storage.
 * @param {{getItem: (k: string) => string | null, setItem: (k: string, v: string) => void} | null} storage
 * @param {string} key @param {(a: Uint8Array) => Uint8Array} [fill] random bytes
 * @returns {string}
 */
export function keptSessid(storage, key, fill = (a) => crypto.getRandomValues(a)) {
  let s = null;
  try { s = storage && storage.getItem(key); } catch {}
  if (s && /^[0-9a-f-]{36}$/.test(s)) return s;
  // 120 random bits, written as a version 4 UUID like mod_verto's own client's
  s = [...fill(new Uint8Array(15))].map((x) => x.toString(16).padStart(2, '0')).join('').replace(/^(.{8})(.{4})(.{3})(.{3})/, '$1-$2-4$3-8$4-');
  try { storage?.setItem(key, s); } catch {}
  return s;
}

/**
 * @typedef {{resolve: (v: any) => void, reject: (e: Error) => void, timer: any, method: string}} Pending
 * @typedef {{set: (f: () => void, ms: number) => any, clear: (t: any) => void}} Timers
 */

/** Bookkeeping of outstanding requests: ids, callbacks and expiry. */
export class Requests {
  /** @param {Timers} timers */
  constructor(timers) {
    this.timers = timers;
    this.next = 1;
    /** @type {Map<number, Pending>} */
    this.pending = new Map();
  }

  /** Registers a request; returns its id and the promise of its result.
   * @param {string} method @param {number} timeout ms
   * @returns {{id: number, promise: Promise<any>}} */
  add(method, timeout) {
    const id = this.next++;
    const promise = new Promise((resolve, reject) => {
      const timer = this.timers.set(() => {
        this.pending.delete(id);
        reject(new VertoError(0, method + ' timed out'));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer, method });
    });
    return { id, promise };
  }

  /** Settles the request a reply answers. @param {any} reply @returns {boolean} whether it matched */
  settle(reply) {
    const p = this.pending.get(reply.id);
    if (!p) return false;
    this.pending.delete(reply.id);
    this.timers.clear(p.timer);
    const err = replyError(reply);
    if (err) p.reject(err);
    else p.resolve(reply.result);
    return true;
  }

  /** Rejects every outstanding request. @param {Error} err */
  failAll(err) {
    for (const p of this.pending.values()) {
      this.timers.clear(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }
}

/**
 * @typedef {'connecting'|'ready'|'reconnecting'|'punted'|'login failed'|'closed'|'removed'} VertoState
 * @typedef {{
 *   url: string, login: string, passwd: string, sessid?: string,
 *   WebSocket?: any, timers?: Timers, random?: () => number, timeout?: number,
 *   onState?: (s: VertoState, detail?: string) => void,
 *   onReady?: () => void,
 *   onEvent?: (params: any) => void,
 *   onInfo?: (params: any) => void,
 *   onSessid?: (sessid: string) => void,
 * }} VertoOptions
 */

/** A Verto connection that logs in, keeps alive and reconnects by itself. */
export class Verto {
  /** @param {VertoOptions} o */
  constructor(o) {
    this.o = o;
    this.sessid = o.sessid || keptSessid(null, '');
    this.WS = o.WebSocket || globalThis.WebSocket;
    this.timers = o.timers || { set: (f, ms) => setTimeout(f, ms), clear: (t) => clearTimeout(t) };
    this.random = o.random || Math.random;
    this.requests = new Requests(this.timers);
    /** @type {VertoState} */
    this.state = 'closed';
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.aliveTimer = null;
    this.readyTimer = null;
    this.loggedIn = false;
    this.ready = false;
    /** @type {Promise<any> | null} */
    this.loggingIn = null;
    this.stopped = true;
  }

  /** @param {VertoState} s @param {string} [detail] */
  setState(s, detail) {
    if (this.state === s) return;
    this.state = s;
    this.o.onState?.(s, detail);
  }

  /** Opens the connection (and keeps it open until stop or punt). */
  start() {
    this.stopped = false;
    this.connect();
  }

  /** Closes the connection for good. */
  stop() {
    this.halt('closed');
  }

  /** Closes the connection for good, in state s (punted, removed, closed). @param {VertoState} s */
  halt(s) {
    this.stopped = true;
    this.teardown();
    this.setState(s);
  }

  /** Reconnects now, e.g. when the browser comes back online. */
  reconnectNow() {
    if (this.stopped || this.state === 'ready') return;
    this.attempt = 0;
    this.teardown();
    this.connect();
  }

  teardown() {
    this.timers.clear(this.retryTimer);
    this.timers.clear(this.aliveTimer);
    this.timers.clear(this.readyTimer);
    this.loggedIn = this.ready = false;
    this.loggingIn = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch { /* already closed */ }
    }
    this.requests.failAll(new VertoError(0, 'disconnected'));
  }

  connect() {
    if (this.state !== 'login failed') this.setState(this.attempt ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new this.WS(this.o.url);
    } catch (e) {
      this.lost();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.login().catch((e) => {
        // Refusals close the socket in login(); a login that got no
        // answer (or any other failure) is retried on a new connection.
        if (this.ws !== ws || e.code === AUTH_FAILED) return;
        console.warn('channels: login:', e);
        this.lost();
      });
    };
    ws.onmessage = (/** @type {{data: any}} */ ev) => this.receive(ev.data);
    // Removed from the channel: the server would refuse every reconnect.
    ws.onclose = (/** @type {{code?: number}} */ ev) => ev?.code === REMOVED ? this.halt('removed') : this.lost();
  }

  /** The socket closed or broke: try again after a backoff. */
  lost() {
    const failed = this.state === 'login failed';
    this.teardown();
    if (this.stopped) return;
    if (!failed) this.setState('reconnecting');
    const attempt = failed ? 6 : this.attempt;
    this.attempt++;
    this.retryTimer = this.timers.set(() => this.connect(), backoff(attempt, this.random()));
  }

  /** Logs in; concurrent callers share one attempt. @returns {Promise<any>} */
  login() {
    if (!this.loggingIn) {
      this.loggingIn = this.send('login', { login: this.o.login, passwd: this.o.passwd }).then((r) => {
        this.loggedIn = true;
        this.loggingIn = null;
        // mod_verto follows a good login with verto.clientReady; should it not come, go on anyway.
        this.readyTimer = this.timers.set(() => this.becomeReady(), 1500);
        return r;
      }, (e) => {
        this.loggingIn = null;
        if (e.code === AUTH_FAILED && e.message === SESSION_IN_USE) {
          // Another login holds our sessid (mod_verto keys sessions by sessid
          // alone, and members see each other's): go on under a new one.
          this.sessid = keptSessid(null, '');
          this.o.onSessid?.(this.sessid);
          this.ws?.close();
        } else if (e.code === AUTH_FAILED) {
          this.setState('login failed', e.message);
          this.ws?.close();
        }
        throw e;
      });
    }
    return this.loggingIn;
  }

  becomeReady() {
    this.timers.clear(this.readyTimer);
    if (this.ready || !this.ws) return;
    this.ready = true;
    this.attempt = 0;
    this.setState('ready');
    this.scheduleKeepalive();
    this.o.onReady?.();
  }

  scheduleKeepalive() {
    this.timers.clear(this.aliveTimer);
    this.aliveTimer = this.timers.set(() => {
      const ws = this.ws;
      this.send('echo', { alive: 1 }).then(() => this.scheduleKeepalive(), () => {
        if (this.ws === ws) this.lost(); // dead socket: reconnect
      });
    }, keepaliveDelay(this.random()));
  }

  /**
   * Sends a request and resolves with its result; errors, including those
   * inside result, reject. "Authentication Required" logs in again and
   * retries once.
   * @param {string} method @param {object} [params] @returns {Promise<any>}
   */
  call(method, params = {}) {
    return this.send(method, params).catch((e) => {
      if (e.code !== AUTH_REQUIRED) throw e;
      this.loggedIn = false;
      return this.login().then(() => this.send(method, params));
    });
  }

  /** @param {string} method @param {object} params @returns {Promise<any>} */
  send(method, params) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return Promise.reject(new VertoError(0, 'not connected'));
    const { id, promise } = this.requests.add(method, this.o.timeout || 10000);
    ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, sessid: this.sessid } }));
    return promise;
  }

  /** @param {string} text */
  receive(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (!m || typeof m !== 'object') continue;
      if (typeof m.method === 'string') this.request(m.method, m.params || {});
      else if ('result' in m || 'error' in m) this.requests.settle(m);
    }
  }

  /** A request from the server; servers expect no reply. @param {string} method @param {any} params */
  request(method, params) {
    switch (method) {
      case 'verto.clientReady':
        if (this.loggedIn) this.becomeReady();
        break;
      case 'verto.event':
        this.o.onEvent?.(params);
        break;
      case 'verto.info':
        this.o.onInfo?.(params);
        break;
      case 'verto.punt':
        this.halt('punted');
        break;
    }
  }

  /** @param {string} channel */
  subscribe(channel) {
    return this.call('verto.subscribe', { eventChannel: channel });
  }

  /** Broadcasts to a channel (localBroadcast: mod_verto delivers only those).
   * @param {string} channel @param {string} data */
  broadcast(channel, data) {
    return this.call('verto.broadcast', { eventChannel: channel, eventData: data, localBroadcast: true });
  }

  /** Sends a direct message through the relay. @param {string} to @param {string} body */
  info(to, body) {
    return this.call('verto.info', { msg: { to, body } });
  }
}

// The STUN/TURN servers handed to each call. With time-limited TURN
// credentials the page's own set expires; a fresh set is fetched before
// the next call or reconnection once it is close to expiry.

/**
 * @typedef {{iceServers?: RTCIceServer[], iceExpires?: number, iceTtl?: number}} IceSet
 *   iceExpires is in Unix seconds, 0 or absent for credentials that never
 *   expire; iceTtl the seconds of them left when the server answered.
 * @typedef {IceSet & {iceUrl?: string, iceTransportPolicy?: string}} IceConfig
 *   iceUrl is where fresh ones come from (same origin).
 * @typedef {{now?: () => number, fetch?: (url: string, init: RequestInit) => Promise<Response>,
 *   log?: (msg: string, err?: unknown) => void}} IceOptions
 *   now is the clock in milliseconds (Date.now).
 */

/** A set this close to expiry (ms) is renewed. */
export const RENEW_MS = 10 * 60 * 1000;
/** After a failed renewal, the next try waits this long (ms). */
export const RETRY_MS = 30 * 1000;
/**
 * A renewal taking longer fails (ms): calls wait for it, and a server that
 * never answers must not hold them.
 */
export const TIMEOUT_MS = 5000;

export class IceServers {
  /** @param {IceConfig} cfg @param {IceOptions} [opts] */
  constructor(cfg, opts = {}) {
    this.now = opts.now || Date.now;
    this.fetch = opts.fetch || ((url, init) => fetch(url, init));
    this.log = opts.log || ((msg, err) => console.warn(msg, err));
    /** @type {RTCIceServer[]} */
    this.servers = cfg.iceServers || [];
    this.expires = this.expiry(cfg);
    /** How long the current set was valid when it arrived (ms). */
    this.lifetime = this.left();
    this.url = cfg.iceUrl || '';
    /** @type {RTCIceTransportPolicy} */
    this.transport = cfg.iceTransportPolicy === 'relay' ? 'relay' : 'all';
    this.retryAt = 0;
    /** @type {Promise<void> | null} the renewal under way */
    this.pending = null;
  }

  /** The servers to use now. @returns {RTCIceServer[]} */
  list() {
    return this.servers;
  }

  /** The RTCPeerConnection's iceTransportPolicy. @returns {RTCIceTransportPolicy} */
  policy() {
    return this.transport;
  }

  /**
   * When set s expires, in ms by our clock (0: never): iceTtl from now,
   * the server's own count, right however far this clock is off the
   * server's. iceExpires, which needs the two clocks to agree, only from
   * a server that sends no iceTtl.
   * @param {IceSet} s
   */
  expiry(s) {
    const ttl = /** @type {number} absent: undefined, which is not >= 0 */ (s.iceTtl);
    return !s.iceExpires ? 0 : ttl >= 0 ? this.now() + ttl * 1000 : s.iceExpires * 1000;
  }

  /** Milliseconds until the set expires (negative once it has). */
  left() {
    return this.expires ? this.expires - this.now() : Infinity;
  }

  /**
   * Whether the set should be renewed: within RENEW_MS of expiry, or past
   * half the lifetime it arrived with, so a call placed now keeps working
   * credentials for at least that long (an ICE restart mid-call reuses
   * them).
   */
  due() {
    if (!this.expires || !this.url) return false;
    return this.left() <= Math.max(RENEW_MS, this.lifetime / 2);
  }

  /**
   * Fetches a fresh set when the current one is due. Never rejects: on
   * failure the old set stays (STUN and static servers in it still work)
   * and the next try waits RETRY_MS. Calls while a fetch is under way
   * share it.
   * @returns {Promise<void>}
   */
  refresh() {
    if (this.pending) return this.pending;
    if (!this.due() || this.now() < this.retryAt) return Promise.resolve();
    this.pending = this.renew().finally(() => { this.pending = null; });
    return this.pending;
  }

  async renew() {
    try {
      // Same origin, with the session cookie; the answer is never cached.
      // The signal also ends a body that trickles in.
      const res = await this.fetch(this.url, { credentials: 'same-origin', signal: AbortSignal.timeout(TIMEOUT_MS) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = await res.json();
      if (!body || !Array.isArray(body.iceServers) || typeof body.iceExpires !== 'number') throw new Error('malformed answer');
      this.servers = body.iceServers;
      this.expires = this.expiry(body);
      this.lifetime = this.left();
      this.retryAt = 0;
    } catch (e) {
      this.retryAt = this.now() + RETRY_MS;
      this.log('ICE renewal failed, old servers kept', e);
    }
  }
}

// Who else is in the channel: bookkeeping of announcements, answers and
// silence. No DOM here. Peers enter only through what the server vouches
// for: an announcement on the channel (its userid is server-stamped) or a
// direct answer, whose `from` the relay stamps and which the relay carries
// only between members of a common channel (the hub checks it; so does the
// FreeSWITCH pack's relay.lua).

/** Heartbeat: re-announce about every 30 s; forget peers silent for 75 s. */
export const HEARTBEAT_MS = 30000;
export const EXPIRE_MS = 75000;

/** A hello (a newcomer, a reload, a second tab, a reconnect) is answered
 * with one direct message to its sender, at once while that peer's
 * budget lasts: ANSWER_BURST answers, then one per ANSWER_GAP_MS (hellos
 * waiting for it fold into one answer). So a join costs N + 1 frames (the
 * hello to N members, N answers), a few quick reloads are answered at
 * once, and a peer repeating hellos gets one answer a second from each
 * member, no more than its own hellos already cost (see the README). */
export const ANSWER_GAP_MS = 1000;
export const ANSWER_BURST = 3;
/** And all answers of a page together: PAGE_BURST, then one per
 * PAGE_GAP_MS (first come, first answered), so many identities saying
 * hello cannot spend the page's direct-message budget, which its calls
 * need (the hub's: 100, then 25 a second). */
export const PAGE_BURST = 50;
export const PAGE_GAP_MS = 100;
/** After a reconnect, peers not heard from again within this long are
 * dropped: they left while we were away. */
export const CONFIRM_MS = 5000;
/** The most peers a page keeps banned (removed from the channel): the
 * oldest ban goes first, so a long list costs bounded memory; the server
 * refuses them anyway, so a forgotten ban only lets a peer's messages in
 * again, not the peer back into the channel. */
export const BANS = 1000;

/**
 * What a peer announces on the channel ("available", "unavailable") or
 * answers directly ("here").
 * @typedef {{t: string, name?: string, key?: string, inst?: string, hello?: boolean}} Announcement
 * @typedef {{id: string, name: string, key: string, inst: string, seen: number}} Peer
 * @typedef {{added: boolean, changed: boolean, restarted: boolean, answer: boolean, left: boolean}} Outcome
 */

/** Trims and limits a display name; never empty. @param {any} name @param {string} id */
export function cleanName(name, id) {
  const s = typeof name === 'string' ? name.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 40) : '';
  return s || 'Guest ' + String(id).slice(0, 4);
}

export class Presence {
  /** @param {string} self our client id @param {() => number} [now] */
  constructor(self, now = Date.now) {
    this.self = self;
    this.now = now;
    /** @type {Map<string, Peer>} */
    this.peers = new Map();
    /** @type {Set<string>} peers removed from the channel, oldest first */
    this.banned = new Set();
  }

  /**
   * A peer removed from the channel: dropped from the list and ignored
   * from now on, until unban (the most recent BANS are kept).
   * Returns whether it was listed. @param {string} id
   */
  ban(id) {
    const b = this.banned;
    if (b.add(id).size > BANS) b.delete(/** @type {string} */ (b.values().next().value));
    return this.peers.delete(id);
  }

  /** A ban lifted: the peer's next announcement lists it again. @param {string} id */
  unban(id) {
    this.banned.delete(id);
  }

  /**
   * Takes an announcement by peer `from`, the server-stamped sender: on the
   * channel (`direct` false) "available" or "unavailable"; as a direct
   * message (`direct` true) the answer "here" or "unavailable" (which the
   * FreeSWITCH pack sends for a member whose last socket closed: only
   * ever from the one who left). `answer` says the peer said hello and
   * wants a direct answer.
   * @param {string} from @param {Announcement} a @param {boolean} [direct]
   * @returns {Outcome}
   */
  take(from, a, direct = false) {
    const out = { added: false, changed: false, restarted: false, answer: false, left: false };
    if (!from || from === this.self || this.banned.has(from) || !a || typeof a !== 'object') return out;
    if (a.t === 'unavailable') {
      out.changed = out.left = this.peers.delete(from);
      return out;
    }
    if (a.t !== (direct ? 'here' : 'available')) return out;
    const old = this.peers.get(from);
    const p = {
      id: from,
      name: cleanName(a.name, from),
      // A P-256 public key is 88 characters of base64: a longer one is no key.
      key: typeof a.key === 'string' && a.key.length <= 128 ? a.key : '',
      inst: typeof a.inst === 'string' ? a.inst.slice(0, 64) : '',
      seen: this.now(),
    };
    this.peers.set(from, p);
    out.added = !old;
    out.changed = !old || old.name !== p.name || old.key !== p.key || old.inst !== p.inst;
    out.restarted = !!old && old.inst !== p.inst;
    out.answer = !direct && a.hello === true;
    return out;
  }

  /**
   * The peer a direct message from `id` may be taken from: only one seen
   * on the channel (never a banned one, which take never lists); it
   * counts as heard from. @param {string} id
   */
  admit(id) {
    const p = this.peers.get(id);
    if (p) p.seen = this.now();
    return p;
  }

  /** Forgets peers silent for longer than maxAge; returns their ids.
   * @param {number} [maxAge] @returns {string[]} */
  sweep(maxAge = EXPIRE_MS) {
    const gone = [];
    const t = this.now();
    for (const [id, p] of this.peers) {
      if (t - p.seen > maxAge) {
        this.peers.delete(id);
        gone.push(id);
      }
    }
    return gone;
  }

  /** Forgets peers not heard from since t (a reconnect's hello); returns
   * their ids. @param {number} t @returns {string[]} */
  forgetBefore(t) {
    return this.sweep(this.now() - t);
  }

  /** @param {string} id */
  get(id) {
    return this.peers.get(id);
  }

  /** Peers sorted by name, then id. @returns {Peer[]} */
  list() {
    return [...this.peers.values()].sort((a, b) => a.name.localeCompare(b.name) || (a.id < b.id ? -1 : 1));
  }
}

/** @typedef {{set: (f: () => void, ms: number) => any, clear: (t: any) => void}} Timers */

/**
 * Answers hellos, each with a direct message to its sender, first come
 * first answered, from two budgets: each peer's (ANSWER_BURST, then one
 * per ANSWER_GAP_MS) and the page's (PAGE_BURST, then one per
 * PAGE_GAP_MS). A hello past them waits; hellos waiting fold into one
 * answer. Memory: one entry per peer waiting, and the budgets of peers
 * answered lately (full ones are forgotten).
 */
export class Answers {
  /** @param {(peer: string) => void} send @param {Timers} [timers] @param {() => number} [now] */
  constructor(send, timers = { set: (f, ms) => setTimeout(f, ms), clear: (t) => clearTimeout(t) }, now = Date.now) {
    this.send = send;
    this.timers = timers;
    this.now = now;
    /** @type {Set<string>} peers whose answer waits, oldest first */
    this.pending = new Set();
    /** @type {Map<string, {n: number, at: number}>} answers each peer may still have, as of a time */
    this.budget = new Map();
    this.page = { n: PAGE_BURST, at: 0 };
    /** @type {any} */
    this.timer = null;
    this.pruned = 0;
  }

  /** Tokens a budget holds now. @param {{n: number, at: number} | undefined} b @param {number} max @param {number} gap */
  left(b, max, gap) {
    return b ? Math.min(max, b.n + (this.now() - b.at) / gap) : max;
  }

  /** Peer said hello. @param {string} peer */
  want(peer) {
    this.pending.add(peer);
    this.drain();
  }

  /** Sends the answers the budgets allow; waits for the next one. */
  drain() {
    this.timers.clear(this.timer);
    this.timer = null;
    const t = this.now();
    if (this.budget.size > 256 && t - this.pruned >= ANSWER_GAP_MS) {
      this.pruned = t;
      for (const [id, b] of this.budget) if (this.left(b, ANSWER_BURST, ANSWER_GAP_MS) >= ANSWER_BURST) this.budget.delete(id);
    }
    let wait = Infinity;
    for (const peer of this.pending) {
      const page = this.left(this.page, PAGE_BURST, PAGE_GAP_MS);
      if (page < 1) {
        wait = Math.min(wait, (1 - page) * PAGE_GAP_MS);
        break;
      }
      const n = this.left(this.budget.get(peer), ANSWER_BURST, ANSWER_GAP_MS);
      if (n < 1) {
        wait = Math.min(wait, (1 - n) * ANSWER_GAP_MS);
        continue;
      }
      this.pending.delete(peer);
      this.budget.set(peer, { n: n - 1, at: t });
      this.page = { n: page - 1, at: t };
      this.send(peer);
    }
    // At least a whole millisecond: rounding must never make it 0.
    if (wait < Infinity) this.timer = this.timers.set(() => this.drain(), Math.max(1, Math.ceil(wait)));
  }

  /** Peer left: its waiting answer is not sent. @param {string} peer */
  forget(peer) {
    this.pending.delete(peer);
  }

  /** We went offline: no answer waits. */
  drop() {
    this.pending.clear();
    this.timers.clear(this.timer);
    this.timer = null;
  }
}

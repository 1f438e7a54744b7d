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
/** After a reconnect, peers not heard from again within this long are
 * dropped: they left while we were away. */
export const CONFIRM_MS = 5000;

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
    if (!from || from === this.self || !a || typeof a !== 'object') return out;
    if (a.t === 'unavailable') {
      out.changed = out.left = this.peers.delete(from);
      return out;
    }
    if (a.t !== (direct ? 'here' : 'available')) return out;
    const old = this.peers.get(from);
    const p = {
      id: from,
      name: cleanName(a.name, from),
      key: typeof a.key === 'string' ? a.key : '',
      inst: typeof a.inst === 'string' ? a.inst : '',
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
   * on the channel; it counts as heard from. @param {string} id
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
 * Answers hellos, each with a direct message to its sender, from a
 * budget per peer (ANSWER_BURST, refilled one per ANSWER_GAP_MS); a hello
 * past it waits for the next answer the budget allows, and hellos waiting
 * fold into it. Memory: one timer per peer waiting, and the budgets of
 * peers answered lately (full ones are forgotten).
 */
export class Answers {
  /** @param {(peer: string) => void} send @param {Timers} [timers] @param {() => number} [now] */
  constructor(send, timers = { set: (f, ms) => setTimeout(f, ms), clear: (t) => clearTimeout(t) }, now = Date.now) {
    this.send = send;
    this.timers = timers;
    this.now = now;
    /** @type {Map<string, any>} peers whose answer waits for their budget */
    this.pending = new Map();
    /** @type {Map<string, {n: number, at: number}>} answers each peer may still have, as of a time */
    this.budget = new Map();
  }

  /** Answers a peer may have now. @param {string} peer */
  left(peer) {
    const b = this.budget.get(peer);
    return b ? Math.min(ANSWER_BURST, b.n + (this.now() - b.at) / ANSWER_GAP_MS) : ANSWER_BURST;
  }

  /** Peer said hello. @param {string} peer */
  want(peer) {
    if (this.pending.has(peer)) return;
    if (this.budget.size > 256) {
      for (const id of this.budget.keys()) if (this.left(id) >= ANSWER_BURST) this.budget.delete(id);
    }
    const n = this.left(peer);
    if (n >= 1) {
      this.answer(peer, n);
      return;
    }
    this.pending.set(peer, this.timers.set(() => {
      this.pending.delete(peer);
      this.answer(peer, this.left(peer));
    }, (1 - n) * ANSWER_GAP_MS));
  }

  /** @param {string} peer @param {number} n */
  answer(peer, n) {
    this.budget.set(peer, { n: n - 1, at: this.now() });
    this.send(peer);
  }

  /** Peer left: its waiting answer is not sent. @param {string} peer */
  forget(peer) {
    this.timers.clear(this.pending.get(peer));
    this.pending.delete(peer);
  }

  /** We went offline: no answer waits. */
  drop() {
    for (const t of this.pending.values()) this.timers.clear(t);
    this.pending.clear();
  }
}

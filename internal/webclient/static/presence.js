// Who else is in the channel: bookkeeping of announcements, answers and
// silence. No DOM here. Peers enter only through the channel's own
// events (server-stamped userid), never through a direct message, which
// mod_verto relays from anyone.

/** Heartbeat: re-announce about every 30 s; forget peers silent for 75 s. */
export const HEARTBEAT_MS = 30000;
export const EXPIRE_MS = 75000;

/** Answers to hellos: one broadcast per 3 s at most, after a random delay of
 * up to 20 ms per known peer (2 s at most), so a join costs one broadcast
 * per member and hello spam no more. */
export const ANSWER_GAP_MS = 3000;
export const ANSWER_SPREAD_MS = 20;
export const ANSWER_MAX_DELAY_MS = 2000;
/** A peer's hello is answered at most once per this long, so that one
 * member repeating hellos cannot make every member re-broadcast. */
export const HELLO_REPEAT_MS = 10000;

/**
 * What a peer announces on the channel.
 * @typedef {{t: string, name?: string, key?: string, inst?: string, hello?: boolean}} Announcement
 * @typedef {{id: string, name: string, key: string, inst: string, seen: number}} Peer
 * @typedef {{added: boolean, changed: boolean, restarted: boolean, answer: boolean}} Outcome
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
    /** @type {Map<string, number>} when each peer's last answered hello came */
    this.hellos = new Map();
  }

  /**
   * Takes an announcement broadcast on the channel by peer `from` (the
   * server-stamped userid): "available" or "unavailable"; anything else,
   * such as the old direct "here", is ignored. `answer` says whether to
   * re-announce ourselves: to a hello (a newcomer or a reconnect), at most
   * once per HELLO_REPEAT_MS from each peer, even across its leaving.
   * @param {string} from @param {Announcement} a @returns {Outcome}
   */
  take(from, a) {
    const out = { added: false, changed: false, restarted: false, answer: false };
    if (!from || from === this.self || !a || typeof a !== 'object') return out;
    if (a.t === 'unavailable') {
      out.changed = this.peers.delete(from);
      return out;
    }
    if (a.t !== 'available') return out;
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
    if (a.hello && !(this.now() - (this.hellos.get(from) ?? -Infinity) < HELLO_REPEAT_MS)) {
      this.hellos.set(from, this.now());
      out.answer = true;
    }
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
    for (const [id, at] of this.hellos) {
      if (t - at > maxAge && !this.peers.has(id)) this.hellos.delete(id);
    }
    return gone;
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
 * Answers hellos with one broadcast of our own announcement: the first
 * hello schedules it after a random delay (spreading the members' answers),
 * later ones fold into it, and answers keep ANSWER_GAP_MS apart.
 */
export class Answers {
  /** @param {() => void} send @param {Timers} [timers] @param {() => number} [now] @param {() => number} [random] */
  constructor(send, timers = { set: (f, ms) => setTimeout(f, ms), clear: (t) => clearTimeout(t) }, now = Date.now, random = Math.random) {
    this.send = send;
    this.timers = timers;
    this.now = now;
    this.random = random;
    /** @type {any} */
    this.timer = null;
    this.last = -Infinity;
  }

  /** A hello arrived; `peers` is how many peers we know. @param {number} peers */
  want(peers) {
    if (this.timer !== null) return;
    const spread = this.random() * Math.min(ANSWER_MAX_DELAY_MS, ANSWER_SPREAD_MS * peers);
    this.timer = this.timers.set(() => {
      this.timer = null;
      this.last = this.now();
      this.send();
    }, Math.max(spread, this.last + ANSWER_GAP_MS - this.now()));
  }

  /** We announced anyway (or went offline): hellos so far need no answer. */
  drop() {
    this.timers.clear(this.timer);
    this.timer = null;
  }
}

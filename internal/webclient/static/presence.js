// Who else is in the channel: bookkeeping of announcements, answers and
// silence. No DOM here.

/** Heartbeat: re-announce about every 30 s; forget peers silent for 75 s. */
export const HEARTBEAT_MS = 30000;
export const EXPIRE_MS = 75000;

/**
 * What a peer announces (in a broadcast or a direct answer).
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
  }

  /**
   * Takes an announcement from peer `from` (a verified id): a broadcast
   * "available" or "unavailable", or a direct "here" answer.
   * `answer` says whether to send our own "here" back: to a newcomer's
   * hello, or to anyone we did not know yet.
   * @param {string} from @param {Announcement} a @returns {Outcome}
   */
  take(from, a) {
    const out = { added: false, changed: false, restarted: false, answer: false };
    if (!from || from === this.self || !a || typeof a !== 'object') return out;
    if (a.t === 'unavailable') {
      out.changed = this.peers.delete(from);
      return out;
    }
    if (a.t !== 'available' && a.t !== 'here') return out;
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
    out.answer = a.t === 'available' && (!old || !!a.hello || out.restarted);
    return out;
  }

  /** Marks a peer as heard from (any verified message). @param {string} id */
  touch(id) {
    const p = this.peers.get(id);
    if (p) p.seen = this.now();
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

  /** @param {string} id */
  get(id) {
    return this.peers.get(id);
  }

  /** Peers sorted by name, then id. @returns {Peer[]} */
  list() {
    return [...this.peers.values()].sort((a, b) => a.name.localeCompare(b.name) || (a.id < b.id ? -1 : 1));
  }
}

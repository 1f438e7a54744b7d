// A call of several people: a set of links (call.js), one per peer, every
// member linked to every other (a mesh: media goes browser to browser and
// never through a server). The group owns the camera, the microphone and a
// shared screen, once, and hands their tracks to every link; it shares the
// page's upload among its links; it lets people in (a person accepts, or a
// member of the call vouches for them) and keeps the size cap. It is the
// calls chunk with call.js, loaded when the first call starts or rings,
// and imports nothing from the page: what it needs is handed in.

import { Call } from './call.js';

/**
 * @typedef {import('./call.js').CallMsg} CallMsg
 * @typedef {import('./call.js').CallState} CallState
 * @typedef {ConstructorParameters<typeof Call>[0]} LinkOptions
 * @typedef {{
 *   self: string, max: number, newId: () => string,
 *   send: (to: string, m: any) => Promise<void> | void,
 *   onChange: () => void, notice: (text: string) => void,
 *   ice: () => {servers: RTCIceServer[], policy?: RTCIceTransportPolicy},
 *   media: (fail: (e: any) => void) => Promise<MediaStream>,
 *   devices: {audio?: string, video?: string}, md?: MediaDevices,
 *   display?: () => Promise<MediaStream>,
 *   known: (peer: string) => boolean, name: (peer: string) => string,
 *   newLink?: (o: LinkOptions) => Call, now?: () => number,
 *   log?: {warn: (...a: any[]) => void},
 * }} GroupOptions
 * @typedef {{id: string, name: string, state: string, remote: MediaStream | null,
 *   mic: boolean, cam: boolean, sharing: boolean, speaking: boolean, problem: string, code?: string}} TileInfo
 * @typedef {{state: CallState, outgoing: boolean, reason: string,
 *   request: {id: string, name: string, join: boolean} | null,
 *   local: MediaStream | null, micOn: boolean, camOn: boolean, sharing: boolean, canShare: boolean,
 *   tiles: TileInfo[]}} CallShow what the view shows of the call
 */

/** The page's whole upload for video, shared among its links, in bit/s. */
export const UPLOAD = 2200000;
/** At most this much video to one peer of several, in bit/s. */
export const PER_PEER = 1500000;
/** How long a member's word that someone joins lets them in unasked, and how long a newcomer counts as new. */
export const VOUCH_MS = 30000;
/** How long an offer on a member's word waits for that word before it is declined. */
export const WAIT_MS = 10000;
/** How many times a link that failed, in a call going on, is made again. */
export const RELINKS = 2;
const FAILED = ['The connection was lost', 'The call could not connect'];
/** An audio level (0–1) above this is someone speaking. */
const SPEAKING = 0.04;
/** The whole call's state: the most advanced of its links'. */
const RANK = ['idle', 'ringing', 'calling', 'connecting', 'reconnecting', 'in call'];
const FULL = 'The call is full';

/**
 * The video limits on each link when the page sends to n peers: one peer
 * gets what the browser gives it; several share UPLOAD, at lower
 * resolution and frame rate as they grow. A shared screen keeps its
 * resolution (text must stay legible) and gives up frame rate instead.
 * @param {number} n @param {boolean} screen
 * @returns {{maxBitrate?: number, scaleResolutionDownBy?: number, maxFramerate?: number}}
 */
export function limits(n, screen) {
  if (n < 2) return {};
  return {
    maxBitrate: Math.min(PER_PEER, Math.floor(UPLOAD / n)),
    scaleResolutionDownBy: screen ? 1 : n < 3 ? 1.5 : 2,
    maxFramerate: screen ? 15 : n < 4 ? 30 : 24,
  };
}

/** Past ringing and not ended. @param {string | undefined} s */
const taken = (s) => s !== 'ringing' && s !== 'calling' && s !== 'idle';
/** @param {Call} l */
const accepted = (l) => taken(l.state);
/** @param {Call} l */
const live = (l) => l.state === 'in call' || l.state === 'reconnecting';

export class Group {
  /** @param {GroupOptions} o */
  constructor(o) {
    this.o = o;
    /** @type {Map<string, Call>} one link per peer */
    this.links = new Map();
    /** @type {MediaStream | null} camera and microphone, once for every link */
    this.local = null;
    /** @type {Promise<void> | null} the camera starting, for this call */
    this.starting = null;
    /** Counts the calls ended, so that a camera started for one ended is stopped. */
    this.epoch = 0;
    /** @type {MediaStreamTrack | null} the shared screen, sent instead of the camera */
    this.screen = null;
    this.micOn = true;
    this.camOn = true;
    /** @type {any} why the camera or microphone did not start, if so */
    this.mediaError = null;
    /** Why the last call ended, for the view. */
    this.reason = '';
    this.outgoing = false;
    /** When this page, linked with one, was told of others (it is joining a call): a newcomer leaves a call found full. */
    this.since = 0;
    /** @type {Map<string, number>} peers a member said are joining, until when */
    this.vouched = new Map();
    /** @type {WeakMap<Call, string>} each link's state when last seen */
    this.was = new WeakMap();
    /** @type {WeakMap<Call, number>} each peer's audio level at the last poll */
    this.levels = new WeakMap();
    /** @type {WeakSet<Call>} offers on a member's word, waiting (unseen) for that word */
    this.held = new WeakSet();
    /** @type {Map<string, number>} links made again after failing, by peer, this call */
    this.relinks = new Map();
    /** @type {WeakMap<Call, number>} when each link came up */
    this.ups = new WeakMap();
    /** @type {Map<string, number>} who said it has no room for us before we heard of them, until when */
    this.fulls = new Map();
    /** @type {Set<string>} who was told we have no room for them, this call */
    this.toldFull = new Set();
  }

  /** @param {string} what @param {any} e */
  warn(what, e) {
    (this.o.log || console).warn('channels: ' + what + ':', e);
  }

  now() {
    return this.o.now ? this.o.now() : Date.now();
  }

  /** @returns {CallState} */
  get state() {
    /** @type {CallState} */
    let s = 'idle';
    for (const l of this.links.values()) if (!this.held.has(l) && RANK.indexOf(l.state) > RANK.indexOf(s)) s = l.state;
    return s;
  }

  /** Whether the person may ring someone now: no call, or one up with nobody ringing here. */
  canPlace() {
    const s = this.state;
    return s === 'idle' || (s !== 'ringing' && s !== 'calling' && !this.request);
  }

  /** The link ringing here (a call, or someone asking to join), if any. */
  get request() {
    for (const l of this.links.values()) if (l.state === 'ringing' && !this.held.has(l)) return l;
    return null;
  }

  /** People in the call or invited to it, this page included. */
  size() {
    let n = 1;
    for (const l of this.links.values()) if (l.state !== 'ringing') n++;
    return n;
  }

  /** Peers of the call's accepted links (the roster a member tells). @param {Call} [but] */
  members(but) {
    return [...this.links.values()].filter((l) => l !== but && accepted(l)).map((l) => l.peer);
  }

  /** @param {string} id @param {string} peer @param {boolean} outgoing */
  make(id, peer, outgoing) {
    const { servers, policy } = this.o.ice();
    /** @type {LinkOptions} */
    const co = {
      id, peer, outgoing, iceServers: servers, iceTransportPolicy: policy, log: this.o.log,
      send: (m) => this.o.send(peer, m),
      tracks: () => this.tracks(),
      onChange: (c) => this.changed(c),
    };
    return this.o.newLink ? this.o.newLink(co) : new Call(co);
  }

  /** What every link sends: the microphone, and the screen or else the camera. */
  tracks() {
    const v = this.screen || this.local?.getVideoTracks()[0];
    return [...(this.local?.getAudioTracks() || []), ...(v ? [v] : [])];
  }

  /**
   * Rings peer, into the call if one runs; '' or why not.
   * @param {string} peer @returns {string}
   */
  place(peer) {
    const had = this.links.get(peer);
    if (had) { // calling them, or they us: take their offer
      if (had.state === 'ringing') this.take(had, true);
      return '';
    }
    if (this.size() >= this.o.max) return FULL + ' (' + this.o.max + ' people)';
    if (this.state === 'idle') this.begin(true);
    this.link(peer, true);
    if (this.state !== 'idle') this.startMedia(); // not for a call that could not start
    return '';
  }

  /** A new call's start. @param {boolean} outgoing */
  begin(outgoing) {
    this.outgoing = outgoing;
    this.reason = '';
    this.since = 0;
  }

  /** An outgoing link to peer: placed by the person (manual) or on a member's word. @param {string} peer @param {boolean} manual */
  link(peer, manual) {
    // Who is in our call (or invited): the peer counts only those it lacks.
    const others = [...this.links.values()].filter((x) => x.state !== 'ringing').map((x) => x.peer);
    const l = this.make(this.o.newId(), peer, true);
    l.manual = manual;
    this.links.set(peer, l);
    this.was.set(l, l.state);
    try {
      l.start(manual ? { with: others } : { with: others, join: true });
    } catch (e) { // e.g. a peer connection the browser refused
      this.warn('call ' + peer, e);
      l.end('failed', 'The call could not start', true);
    }
    this.change();
  }

  /**
   * An offer from a peer: a call, someone asking to join ours, or a
   * member's peer joining on its word. Crossing offers (both called each
   * other) leave one link: the call from the smaller id.
   * @param {string} from @param {CallMsg} m
   */
  offer(from, m) {
    const had = this.links.get(from);
    if (had && had.id === m.call) return;
    const join = m.join === true;
    // A member's peer joining on its word finds a page no longer in the call.
    if (join && !this.members().length && !this.calling()) return this.refuse(from, m.call, {});
    let crossed = false;
    if (had && had.state === 'ringing') return this.refuse(from, m.call, { busy: true }); // one at a time
    if (had) {
      if (had.state === 'calling' && this.o.self < from) return; // ours wins
      crossed = had.state === 'calling';
      // Theirs replaces ours: crossing, or the peer started afresh.
      this.links.delete(from);
      had.end('hangup', '', false);
    }
    if (!crossed) { // a crossing call was ours to place already
      // One person rings at a time; offers on a member's word wait apart, a few.
      if (join ? this.waiting() >= this.o.max : this.request) return this.refuse(from, m.call, { busy: true });
      // The caller and those of its call we are not linked with yet.
      const theirs = Array.isArray(m.with) ? m.with.slice(0, this.o.max) : [];
      const n = 1 + theirs.filter((p) => typeof p === 'string' && p !== this.o.self && !this.links.has(p)).length;
      if (this.size() + (join ? 1 : n) > this.o.max) return this.refuse(from, m.call, { full: true });
    }
    if (this.state === 'idle') this.begin(false);
    const l = this.make(m.call, from, false);
    this.links.set(from, l);
    this.was.set(l, l.state);
    // A member making its link again (it failed) vouches for itself.
    if (crossed || (join && (this.vouchedFor(from) || (!!had && taken(had.state))))) {
      // Someone we were calling, or whom a member let in, needs no ringing.
      this.take(l, crossed);
    } else if (join) {
      // Its member's word (a roster) may still be on its way, behind that
      // member's other messages: the offer waits for it, unseen, a while.
      this.held.add(l);
      setTimeout(() => { if (l.state === 'ringing') l.decline(); }, WAIT_MS);
    }
    this.change();
  }

  /** Whether a member of the call named peer as joining, lately. @param {string} peer */
  vouchedFor(peer) {
    return (this.vouched.get(peer) || 0) > this.now();
  }

  /** Whether this page is joining someone's call (told of its people less than VOUCH_MS ago). */
  recent() {
    return !!this.since && this.now() - this.since < VOUCH_MS;
  }

  /**
   * A peer became known (listed on the channel): if a member named it
   * and this page offers, the link that roster could not make is made.
   * @param {string} peer
   */
  seen(peer) {
    if (this.vouchedFor(peer) && !this.links.has(peer) && this.members().length && this.size() < this.o.max && this.o.self < peer) this.link(peer, false);
  }

  /** Whether a link of ours is out, unanswered. */
  calling() {
    for (const l of this.links.values()) if (l.state === 'calling') return true;
    return false;
  }

  /** Offers on a member's word waiting for that word. */
  waiting() {
    let n = 0;
    for (const l of this.links.values()) if (this.held.has(l) && l.state === 'ringing') n++;
    return n;
  }

  /** @param {string} to @param {string} call @param {{busy?: boolean, full?: boolean}} why */
  refuse(to, call, why) {
    Promise.resolve(this.o.send(to, { t: 'decline', call, ...why })).catch((e) => this.warn('decline ' + to, e));
  }

  /** Accepts the ringing call or request. */
  accept() {
    const r = this.request;
    if (r) this.take(r, true);
  }

  /** Declines the ringing call or request. */
  decline() {
    this.request?.decline();
  }

  /** @param {Call} l @param {boolean} manual */
  take(l, manual) {
    this.held.delete(l); // no longer waiting: a link like any other
    l.manual = manual;
    l.accept();
    // The answer first, then the camera: both at once slow each other
    // down; should the offer be late, the camera waits for it a little.
    this.startMedia(l.answered);
  }

  /** Starts camera and microphone for the call, once. @param {Promise<void>} [after] */
  startMedia(after) {
    if (this.starting) return;
    const epoch = this.epoch;
    this.starting = (async () => {
      if (after) await Promise.race([after, new Promise((r) => setTimeout(r, 1000))]);
      const s = await this.o.media((e) => { this.mediaError = e; });
      if (this.epoch !== epoch) { // the call ended meanwhile
        s.getTracks().forEach((t) => t.stop());
        return;
      }
      s.getAudioTracks().forEach((t) => { t.enabled = this.micOn; });
      this.local = s;
      for (const l of this.links.values()) l.attach();
      this.change();
    })().catch((e) => this.warn('media', e));
  }

  /** Leaves the call: the others stay connected with each other. @param {string} [reason] */
  hangup(reason) {
    for (const l of [...this.links.values()]) l.end('hangup', reason || 'Call ended', true);
  }

  /**
   * A link changed: its state (which may change the call's), or its media.
   * @param {Call} l
   */
  changed(l) {
    if (this.links.get(l.peer) !== l) return; // replaced
    const was = this.was.get(l);
    this.was.set(l, l.state);
    if (l.state === 'idle') {
      this.links.delete(l.peer);
      // Who left needs asking again to come back.
      this.vouched.delete(l.peer);
      const rest = [...this.links.values()];
      if (rest.every((x) => this.held.has(x))) {
        // Nobody left but offers on a word that can no longer come.
        for (const x of rest) {
          this.links.delete(x.peer);
          x.decline();
        }
        return this.finish(l.reason);
      }
      const who = this.o.name(l.peer);
      if (l.reason === FULL && !l.manual && this.recent()) return this.hangup(FULL);
      // A link that failed, or made on a word and never answered (its
      // offer lost to a page that did not know us yet), is made again.
      const lost = (taken(was) && FAILED.includes(l.reason)) || (was === 'calling' && !l.manual && l.reason === 'No answer');
      // A link that held a minute before failing starts its count afresh.
      if (this.now() - (this.ups.get(l) ?? this.now()) > 60000) this.relinks.delete(l.peer);
      if (lost && this.relink(l.peer)) return this.change();
      if (was === 'calling' && l.manual) this.o.notice(who + ' did not join: ' + l.reason);
      else if (taken(was) && l.reason !== 'Call ended') this.o.notice(who + ': ' + l.reason);
      this.tune();
    } else if ((was === 'calling' || was === 'ringing') && accepted(l)) {
      this.joined(l);
    } else if (l.state === 'in call' && was !== 'in call') {
      this.ups.set(l, this.now());
      this.tune();
      if (!this.micOn || !this.camOn || this.screen) this.tell(l);
    }
    this.change();
  }

  /**
   * A link of a call going on failed (under load, or a network that
   * changed): both sides make it again, a few times, rather than leave the
   * call half connected; the smaller id offers, the other takes that
   * offer on its own word. False when it is not made again.
   * @param {string} peer @returns {boolean}
   */
  relink(peer) {
    const n = this.relinks.get(peer) || 0;
    if (n >= RELINKS || !this.o.known(peer)) return false;
    this.relinks.set(peer, n + 1);
    this.vouched.set(peer, this.now() + VOUCH_MS);
    const held = this.links.get(peer);
    if (held && held.state === 'ringing') this.take(held, false); // its offer came first
    // Both offer: crossing offers leave one link (the smaller id's), and
    // the call counts the link under way, so it does not end meanwhile.
    else if (!held) this.link(peer, false);
    return true;
  }

  /**
   * A link was accepted: the peer hears who else is in the call, and,
   * if a person let them in, the others hear of them. Each then links to
   * those it does not know, the smaller id offering, the other expecting
   * the offer on that member's word.
   * @param {Call} l
   */
  joined(l) {
    // After the link's own accept, which leaves once this returns: a
    // roster from a peer not yet accepted is not believed.
    queueMicrotask(() => {
      if (!accepted(l) || this.links.get(l.peer) !== l) return;
      const others = this.members(l);
      if (others.length) this.o.send(l.peer, { t: 'roster', call: l.id, peers: others });
      if (!l.manual) return;
      for (const x of this.links.values()) if (x !== l && accepted(x)) this.o.send(x.peer, { t: 'roster', call: x.id, peers: [l.peer] });
    });
  }

  /**
   * A member told who is in the call: link to those we lack.
   * @param {Call} from @param {unknown} peers
   */
  roster(from, peers) {
    if (!accepted(from) || !Array.isArray(peers)) return; // only members speak for the call
    // Told of others while linked with one: this page is joining a call.
    if (!this.since && this.members().length <= 1) this.since = this.now();
    const until = this.now() + VOUCH_MS;
    for (const p of peers.slice(0, this.o.max)) {
      if (typeof p !== 'string' || p === this.o.self) continue;
      // One of them said it has no room for us: we do not stay half connected.
      if (this.recent() && (this.fulls.get(p) || 0) > this.now()) return this.hangup(FULL);
      this.vouched.set(p, until);
      const had = this.links.get(p);
      if (had) {
        if (had.state !== 'ringing') continue;
        // Their offer came first (on this member's word, or asking to join).
        if (this.size() < this.o.max) this.take(had, false);
        else {
          this.links.delete(p);
          had.end('decline', '', false);
          this.refuse(p, had.id, { full: true });
        }
      } else if (this.size() >= this.o.max) {
        // No room: a newcomer must not stay half connected. Told once, and
        // only to people here: a roster of made-up names costs nothing.
        if (this.o.known(p) && !this.toldFull.has(p)) {
          if (this.toldFull.add(p).size > 4 * this.o.max) this.toldFull.clear();
          Promise.resolve(this.o.send(p, { t: 'full', call: '' })).catch((e) => this.warn('full ' + p, e));
        }
      } else if (this.o.self < p && this.o.known(p)) {
        this.link(p, false);
      }
    }
    // Bounded: the vouched expire, and there are never many.
    for (const [p, t] of this.vouched) if (t <= this.now() || this.vouched.size > 4 * this.o.max) this.vouched.delete(p);
  }

  /**
   * A message of a call from a peer, other than an offer.
   * @param {string} from @param {CallMsg} m
   */
  receive(from, m) {
    if (m.t === 'full') {
      // Someone of the call we are joining has no room for us: believed
      // only while we join, and not from anyone linked with us already.
      const had = this.links.get(from);
      const joining = this.recent() || (!this.since && this.members().length === 1);
      if (!joining || (had && accepted(had))) return;
      if (this.vouchedFor(from) && this.recent()) return this.hangup(FULL);
      // Before the word naming them: kept a while, bounded.
      if (this.fulls.size < this.o.max) this.fulls.set(from, this.now() + WAIT_MS);
      return;
    }
    const l = this.links.get(from);
    if (!l || l.id !== m.call) return;
    if (m.t === 'roster') return this.roster(l, m.peers);
    if (m.t === 'state') {
      l.flags = { mic: m.mic !== false, cam: m.cam !== false, share: m.share === true };
      return this.change();
    }
    return l.handle(m);
  }

  /**
   * The peer left the channel (or its page started afresh): a link still
   * setting up ends; a live one waits for its own recovery deadline, as
   * media is peer to peer and may outlive the signalling.
   * @param {string} peer @param {boolean} restarted
   */
  gone(peer, restarted) {
    const l = this.links.get(peer);
    if (l && (restarted || !live(l))) l.end('closed', 'Call ended', false);
  }

  /** Signalling is back after a loss: links still recovering try again. */
  recover() {
    for (const l of this.links.values()) l.restart();
  }

  /** The last link ended: so did the call. @param {string} reason */
  finish(reason) {
    this.reason = reason;
    this.epoch++;
    this.starting = null;
    this.local?.getTracks().forEach((t) => t.stop());
    this.local = null;
    this.screen?.stop();
    this.screen = null;
    this.micOn = this.camOn = true;
    this.mediaError = null;
    this.vouched.clear();
    this.relinks.clear();
    this.fulls.clear();
    this.toldFull.clear();
    this.change();
  }

  change() {
    this.o.onChange();
  }

  /** Runs f on every link past ringing, logging failures. @param {(l: Call) => Promise<void> | void} f @param {string} what */
  each(f, what) {
    for (const l of this.links.values()) if (accepted(l)) Promise.resolve().then(() => f(l)).catch((e) => this.warn(what + ' ' + l.peer, e));
  }

  /** Shares the page's upload among the links. */
  tune() {
    const lim = limits(this.members().length, !!this.screen);
    this.each((l) => l.tune(lim), 'tune');
  }

  /** Tells a peer our microphone, camera and screen. @param {Call} l */
  tell(l) {
    this.o.send(l.peer, { t: 'state', call: l.id, mic: this.micOn, cam: this.camOn, share: !!this.screen });
  }

  tellAll() {
    for (const l of this.links.values()) if (accepted(l)) this.tell(l);
  }

  /** Mutes or unmutes the microphone. */
  toggleMic() {
    this.micOn = !this.micOn;
    this.local?.getAudioTracks().forEach((t) => { t.enabled = this.micOn; });
    this.tellAll();
    this.change();
  }

  /** Stops the camera (releasing it) or starts it again. */
  async toggleCamera() {
    this.camOn = !this.camOn;
    if (!this.camOn) {
      this.local?.getVideoTracks().forEach((t) => { t.stop(); this.local?.removeTrack(t); });
      if (!this.screen) this.each((l) => l.replace('video', null), 'camera off');
    } else {
      try {
        await this.useDevice('video', this.o.devices.video || '');
      } catch (e) {
        this.camOn = false; // still off: say so on the button
        this.change();
        throw e;
      }
    }
    this.tellAll();
    this.change();
  }

  /**
   * Switches to another microphone or camera.
   * @param {'audio'|'video'} kind @param {string} deviceId
   */
  async useDevice(kind, deviceId) {
    if (kind === 'video' && !this.camOn) return;
    const c = deviceId ? { deviceId: { exact: deviceId } } : true;
    const s = await /** @type {MediaDevices} */ (this.o.md).getUserMedia(kind === 'audio' ? { audio: c } : { video: c });
    const t = s.getTracks()[0];
    if (kind === 'audio') t.enabled = this.micOn;
    if (this.state === 'idle') return t.stop();
    if (!this.local) this.local = new MediaStream();
    for (const old of this.local.getTracks()) if (old.kind === kind) { old.stop(); this.local.removeTrack(old); }
    this.local.addTrack(t);
    if (kind === 'audio' || !this.screen) this.each((l) => l.replace(kind, t), 'switch ' + kind);
    this.change();
  }

  /** Shares a screen (the browser asks which) instead of the camera, or stops sharing. */
  async share() {
    if (this.screen) return this.unshare();
    if (!this.o.display) return;
    const t = (await this.o.display()).getVideoTracks()[0];
    if (!t) return;
    if (this.state === 'idle' || this.screen) return t.stop(); // ended, or shared twice, meanwhile
    t.contentHint = 'detail';
    // The browser's own "Stop sharing" ends the track.
    t.addEventListener('ended', () => { if (this.screen === t) this.unshare(); });
    this.screen = t;
    this.each((l) => l.replace('video', t), 'share');
    this.tune();
    this.tellAll();
    this.change();
  }

  /** Back to the camera. */
  unshare() {
    const t = this.screen;
    if (!t) return;
    this.screen = null;
    t.stop();
    const cam = this.local?.getVideoTracks()[0] || null;
    this.each((l) => l.replace('video', cam), 'unshare');
    this.tune();
    this.tellAll();
    this.change();
  }

  /** Bytes received by all links so far; notes who speaks. @returns {Promise<number>} */
  async poll() {
    let bytes = 0, moved = false;
    for (const l of this.links.values()) {
      const s = await l.stats();
      bytes += s.bytes;
      if ((s.level > SPEAKING) !== ((this.levels.get(l) || 0) > SPEAKING)) moved = true;
      this.levels.set(l, s.level);
    }
    if (moved) this.change();
    return bytes;
  }

  /** What the view shows. @returns {CallShow} */
  show() {
    const r = this.request, name = this.o.name;
    return {
      state: this.state, outgoing: this.outgoing, reason: this.reason,
      request: r ? { id: r.peer, name: name(r.peer), join: this.size() > 1 } : null,
      local: this.local, micOn: this.micOn, camOn: this.camOn, sharing: !!this.screen, canShare: !!this.o.display,
      tiles: [...this.links.values()].filter((l) => l.state !== 'ringing').map((l) => ({
        id: l.peer, name: name(l.peer), state: l.state, remote: l.remote,
        mic: l.flags.mic, cam: l.flags.cam, sharing: l.flags.share,
        speaking: (this.levels.get(l) || 0) > SPEAKING,
        problem: l.state === 'reconnecting' ? 'Connection lost, reconnecting…' : '',
      })),
    };
  }
}

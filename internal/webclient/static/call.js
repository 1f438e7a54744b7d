// One link of a call: the connection between this page and one peer, with
// the offer/accept/decline/close protocol and an RTCPeerConnection with
// "perfect negotiation". A call of several people is a set of links
// (group.js), which owns the camera and microphone and hands their tracks
// to every link. Nothing here touches the DOM, and browser APIs are used
// only once a link runs, so Node's test runner can import the pure parts.
// Part of the calls chunk, loaded on demand: it imports nothing.

/**
 * @typedef {'idle'|'calling'|'ringing'|'connecting'|'in call'|'reconnecting'} CallState
 * @typedef {{t: string, call: string, d?: any, c?: any, busy?: boolean, full?: boolean, with?: string[], join?: boolean, lost?: boolean, peers?: string[],
 *   mic?: boolean, cam?: boolean, share?: boolean}} CallMsg
 */

/** Call states and the events that move between them. */
const MOVES = /** @type {Record<string, Record<string, CallState>>} */ ({
  idle: { place: 'calling', incoming: 'ringing' },
  calling: { accepted: 'connecting', declined: 'idle', closed: 'idle', hangup: 'idle', timeout: 'idle' },
  ringing: { accept: 'connecting', decline: 'idle', closed: 'idle', hangup: 'idle', timeout: 'idle' },
  connecting: { connected: 'in call', closed: 'idle', hangup: 'idle', failed: 'idle' },
  'in call': { disconnected: 'reconnecting', closed: 'idle', hangup: 'idle', failed: 'idle' },
  reconnecting: { connected: 'in call', closed: 'idle', hangup: 'idle', failed: 'idle' },
});

/** The state after an event, or null if the event does not apply.
 * @param {CallState} state @param {string} event @returns {CallState | null} */
export function transition(state, event) {
  return MOVES[state]?.[event] || null;
}

/**
 * Perfect negotiation's rule for an incoming description: does it collide
 * with our own offer, and must we (the impolite side) ignore it?
 * @param {{type: string, polite: boolean, makingOffer: boolean, signalingState: string, settingAnswer: boolean}} s
 * @returns {{collision: boolean, ignore: boolean}}
 */
export function offerCollision(s) {
  const ready = !s.makingOffer && (s.signalingState === 'stable' || s.settingAnswer);
  const collision = s.type === 'offer' && !ready;
  return { collision, ignore: collision && !s.polite };
}

/** Ring for this long before giving up. */
export const RING_MS = 45000;
/** Give a new connection this long to come up, a broken one this long to recover. */
export const RECOVER_MS = 20000;

/**
 * One link with one peer. The caller is the polite peer, the callee the
 * impolite one; until the callee has answered the caller's first offer it
 * makes no offers itself, so the usual start has no glare at all.
 */
export class Call {
  /**
   * @param {{
   *   id: string, peer: string, outgoing: boolean, iceServers: RTCIceServer[],
   *   iceTransportPolicy?: RTCIceTransportPolicy,
   *   send: (m: any) => Promise<void> | void, onChange: (c: Call) => void,
   *   tracks?: () => MediaStreamTrack[],
   *   PC?: typeof RTCPeerConnection,
   *   log?: {warn: (...a: any[]) => void},
   * }} o tracks: what this page sends now (the call's microphone, and its camera or shared screen)
   */
  constructor(o) {
    this.o = o;
    this.id = o.id;
    this.peer = o.peer;
    this.outgoing = o.outgoing;
    this.polite = o.outgoing;
    /** @type {CallState} */
    this.state = o.outgoing ? 'calling' : 'ringing';
    /** Why the call ended, for the view. */
    this.reason = '';
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {MediaStream | null} the peer's media, for the view */
    this.remote = null;
    /** @type {MediaStream | null} the peer's tracks, until they are shown */
    this.incoming = null;
    /** What the peer says of its microphone, camera and screen. */
    this.flags = { mic: true, cam: true, share: false };
    /** Taken by a person (placed or accepted), not joined on another member's word. */
    this.manual = false;
    this.makingOffer = false;
    this.settingAnswer = false;
    this.ignoreOffer = false;
    this.answeredOnce = this.polite;
    /** @type {CallMsg[]} messages that came while ringing */
    this.early = [];
    /** @type {CallMsg[]} our answer and candidates, kept while ringing */
    this.held = [];
    /** @type {() => void} */
    this.onAnswered = () => {};
    /** Settles once the callee has sent its first answer. */
    this.answered = new Promise((r) => { this.onAnswered = () => r(undefined); });
    /** @type {Promise<any>} */
    this.chain = Promise.resolve();
    this.timer = setTimeout(() => this.end('timeout', this.outgoing ? 'No answer' : 'Missed call', this.outgoing), RING_MS);
  }

  /** Logs a failure with the call's context. @param {string} what @param {any} e */
  warn(what, e) {
    (this.o.log || console).warn('channels: call ' + this.id + ': ' + what + ':', e);
  }

  /** @param {string} event @returns {boolean} */
  fire(event) {
    const next = transition(this.state, event);
    if (!next) return false;
    this.state = next;
    if (next === 'idle') this.cleanup();
    this.o.onChange(this);
    return true;
  }

  /** @param {Omit<CallMsg, 'call'>} m @returns {Promise<void>} once handed to the signalling */
  send(m) {
    const full = { ...m, call: this.id };
    // While ringing, the answer and our candidates wait for the person to accept.
    if (this.state === 'ringing' && (m.t === 'sdp' || m.t === 'ice')) this.held.push(full);
    else return Promise.resolve(this.o.send(full));
    return Promise.resolve();
  }

  /**
   * Caller: invite the peer and set up the connection at once: the offer
   * and our candidates wait at the callee while it rings, and the camera
   * joins when it is ready (attach).
   * @param {{with?: string[], join?: boolean}} [extra] said with the invitation: who is in
   *   our call, and whether it joins the peer on a member's word rather than ringing it
   */
  start(extra) {
    this.send({ t: 'offer', ...extra });
    this.connect();
  }

  /** Puts what the page sends now on the connection. */
  attach() {
    for (const t of this.o.tracks?.() || []) this.replace(t.kind, t).catch((e) => this.warn('attach ' + t.kind, e));
  }

  /**
   * Callee: take the call. The answer prepared while ringing leaves at
   * once; the call starts the camera once it has left (answered).
   */
  accept() {
    this.chain = this.chain.then(async () => {
      if (!this.fire('accept')) return;
      this.deadline('The call could not connect');
      if (!this.pc) this.connect();
      this.send({ t: 'accept' });
      for (const m of this.held.splice(0)) this.o.send(m);
      for (const m of this.early.splice(0)) await this.take(m);
    }).catch((e) => {
      // Without a connection there is no call to wait for.
      this.warn('accept', e);
      this.end('failed', 'Call failed', true);
    });
    return this.chain;
  }

  /** Callee: refuse the call. */
  decline() {
    if (this.state !== 'ringing') return;
    this.send({ t: 'decline' });
    this.end('decline', 'Declined', false);
  }

  /** Either side: end the call. */
  hangup() {
    this.end('hangup', 'Call ended', true);
  }

  /**
   * Ends the call locally, telling the peer when asked to.
   * @param {string} event @param {string} reason @param {boolean} tell
   */
  end(event, reason, tell) {
    if (this.state === 'idle') return;
    // A connection that failed says so: the peer may link again (group.js).
    if (tell) this.send(event === 'failed' ? { t: 'close', lost: true } : { t: 'close' });
    this.reason = reason;
    if (!this.fire(event)) {
      this.state = 'idle';
      this.cleanup();
      this.o.onChange(this);
    }
  }

  cleanup() {
    clearTimeout(this.timer);
    if (this.pc) {
      this.pc.onicecandidate = this.pc.onnegotiationneeded = this.pc.onconnectionstatechange = this.pc.ontrack = null;
      this.pc.close();
    }
  }

  /** Creates the peer connection and adds our media. */
  connect() {
    const PC = this.o.PC || RTCPeerConnection;
    const pc = new PC({ iceServers: this.o.iceServers, iceTransportPolicy: this.o.iceTransportPolicy || 'all' });
    this.pc = pc;
    pc.onicecandidate = (e) => { if (e.candidate) this.send({ t: 'ice', c: e.candidate.toJSON() }); };
    pc.onnegotiationneeded = async () => {
      if (!this.answeredOnce) return;
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        this.send({ t: 'sdp', d: pc.localDescription?.toJSON() }).then(() => setTimeout(() => this.reveal()));
      } catch { /* a newer negotiation takes over */ } finally {
        this.makingOffer = false;
      }
    };
    pc.ontrack = (e) => {
      if (!this.incoming) this.incoming = e.streams[0] || new MediaStream();
      if (!this.incoming.getTracks().includes(e.track)) this.incoming.addTrack(e.track);
      if (this.remote) this.o.onChange(this);
    };
    pc.onconnectionstatechange = () => this.pcState(pc.connectionState);
    // The caller offers audio and video both ways before any camera is on;
    // tracks are put on the senders when they come, with no renegotiation.
    if (this.polite) {
      for (const kind of ['audio', 'video']) pc.addTransceiver(kind, { direction: 'sendrecv' });
      this.attach();
    }
  }

  /**
   * Hands the peer's media to the view. The first remote audio a page
   * plays starts its audio output, which can hold the page's thread for
   * half a second; so this waits until our own description is made and
   * leaves (caller: while the callee rings; callee: once its answer is
   * ready), never delaying either. A ringing callee's view keeps it out
   * of sight until the person accepts.
   */
  reveal() {
    if (this.remote || this.state === 'idle' || !this.pc) return;
    this.remote = this.incoming = this.incoming || new MediaStream(this.pc.getTransceivers().map((t) => t.receiver.track));
    this.o.onChange(this);
  }

  /**
   * Ends the call with reason unless it is connected within RECOVER_MS.
   * @param {string} reason
   */
  deadline(reason) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.end('failed', reason, true), RECOVER_MS);
  }

  /**
   * The connection's state. Connecting and recovering have a deadline,
   * set on entering them and cleared only by 'connected': the states the
   * connection passes through meanwhile (failed, connecting, an ICE
   * restart's) never extend it.
   * @param {string} s
   */
  pcState(s) {
    if (s === 'connected') {
      if (this.fire('connected')) clearTimeout(this.timer);
    } else if (s === 'disconnected' || s === 'failed') {
      if (this.fire('disconnected')) this.deadline('The connection was lost');
      if (s === 'failed' && this.polite) this.pc?.restartIce();
    }
  }

  /**
   * Signalling is back after a loss: a broken connection's ICE restart,
   * whose offer may have been lost meanwhile, is tried again.
   */
  restart() {
    if (this.state === 'reconnecting' && this.polite) this.pc?.restartIce();
  }

  /** Takes a message of this call from the peer, in order. @param {CallMsg} m */
  handle(m) {
    // A message that fails (a bad description or candidate) is logged; the
    // call goes on, and a connection that never comes ends by its timers.
    this.chain = this.chain.then(() => this.take(m)).catch((e) => this.warn(m.t, e));
    return this.chain;
  }

  /** @param {CallMsg} m */
  async take(m) {
    if (this.state === 'ringing') {
      // Prepare the answer while it rings, but keep it, and the caller's
      // candidates, until accepted: until then no packet goes to the caller.
      if (m.t === 'sdp' && !this.pc && m.d && m.d.type === 'offer') {
        this.connect();
        return this.description(m.d);
      }
      if ((m.t === 'sdp' || m.t === 'ice') && this.early.length < 200) this.early.push(m);
      if (m.t === 'sdp' || m.t === 'ice') return;
    }
    switch (m.t) {
      case 'accept':
        if (this.state !== 'calling') return;
        this.deadline('The call could not connect');
        this.fire('accepted');
        return;
      case 'decline':
        this.end('declined', m.full ? 'The call is full' : m.busy ? 'Busy' : 'Declined', false);
        return;
      case 'close':
        if (m.lost === true) this.end('failed', 'The connection was lost', false);
        else this.end('closed', 'Call ended', false);
        return;
      case 'sdp':
        return this.description(m.d);
      case 'ice':
        if (!this.pc || !m.c) return;
        try { await this.pc.addIceCandidate(m.c); } catch (e) { if (!this.ignoreOffer) throw e; }
    }
  }

  /** @param {RTCSessionDescriptionInit} d */
  async description(d) {
    const pc = this.pc;
    if (!pc || !d || (d.type !== 'offer' && d.type !== 'answer')) return;
    const { ignore } = offerCollision({
      type: d.type, polite: this.polite, makingOffer: this.makingOffer,
      signalingState: pc.signalingState, settingAnswer: this.settingAnswer,
    });
    this.ignoreOffer = ignore;
    if (ignore) return;
    this.settingAnswer = d.type === 'answer';
    await pc.setRemoteDescription(d);
    this.settingAnswer = false;
    if (d.type === 'offer') {
      // Answer sending both ways; the camera joins when ready.
      for (const tr of pc.getTransceivers()) if (tr.direction === 'recvonly') tr.direction = 'sendrecv';
      await pc.setLocalDescription();
      this.send({ t: 'sdp', d: pc.localDescription?.toJSON() }).then(() => setTimeout(() => this.reveal()));
      if (!this.answeredOnce) {
        this.answeredOnce = true;
        this.attach();
      }
      this.onAnswered();
    }
  }

  /**
   * Sends track (or nothing) as this kind, with no renegotiation where a
   * transceiver of the kind exists. A ringing callee's connection waits:
   * its answer attaches what is sent then.
   * @param {string} kind @param {MediaStreamTrack | null} track
   */
  async replace(kind, track) {
    if (!this.pc || (!this.polite && !this.answeredOnce)) return;
    const tr = this.pc.getTransceivers().find((x) => x.receiver.track.kind === kind);
    if (!tr) { if (track) this.pc.addTrack(track); return; }
    if (track && tr.direction === 'recvonly') tr.direction = 'sendrecv';
    await tr.sender.replaceTrack(track);
  }

  /**
   * Limits the video sent on this link: the call shares the page's upload
   * among its links.
   * @param {{maxBitrate?: number, scaleResolutionDownBy?: number, maxFramerate?: number}} limits
   */
  async tune(limits) {
    const s = this.pc?.getTransceivers().find((x) => x.receiver.track.kind === 'video')?.sender;
    if (!s) return;
    // Twice at most: a negotiation in between makes the parameters read stale.
    for (let i = 0; ; i++) {
      const p = s.getParameters();
      if (!p || !p.encodings?.length) return; // not negotiated yet: tuned once connected
      for (const e of p.encodings) {
        for (const k of /** @type {const} */ (['maxBitrate', 'scaleResolutionDownBy', 'maxFramerate'])) {
          if (limits[k]) e[k] = limits[k];
          else delete e[k];
        }
      }
      try {
        return await s.setParameters(p);
      } catch (e) {
        if (i || !(e instanceof Error && e.name === 'InvalidStateError')) throw e;
      }
    }
  }

  /** Bytes received so far and the peer's audio level (0–1). @returns {Promise<{bytes: number, level: number}>} */
  async stats() {
    let bytes = 0, level = 0;
    if (this.pc) {
      (await this.pc.getStats()).forEach((r) => {
        if (r.type !== 'inbound-rtp') return;
        bytes += r.bytesReceived || 0;
        if (r.kind === 'audio') level = Math.max(level, r.audioLevel || 0);
      });
    }
    return { bytes, level };
  }
}

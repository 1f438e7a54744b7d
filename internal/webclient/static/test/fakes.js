// Helpers shared by the tests: waiting for a condition, a TURN server that
// never answers, and stand-ins for the browser's media APIs (media.js and
// controller.js). (Not a test file itself: Node's runner only runs
// *.test.js.)

/**
 * Waits until cond() holds, checking every millisecond, and fails after ms.
 * For what the code under test reaches after Web Crypto or other work off
 * the event loop, whose time no fixed number of ticks bounds on a busy
 * machine.
 * @param {() => unknown} cond @param {number} [ms]
 * @returns {Promise<void>}
 */
export async function waitFor(cond, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`still not ${cond} after ${ms} ms`);
    await new Promise((ok) => setTimeout(ok, 1));
  }
}

/**
 * Runs f with AbortSignal.timeout cut to 50 ms, and returns the timeouts
 * asked for. @param {() => Promise<void>} f @returns {Promise<number[]>}
 */
export async function shortTimeouts(f) {
  const real = AbortSignal.timeout;
  /** @type {number[]} */
  const asked = [];
  AbortSignal.timeout = (ms) => { asked.push(ms); return real.call(AbortSignal, 50); };
  // Node's AbortSignal.timeout does not hold the process open by itself.
  const alive = setTimeout(() => {}, 5000);
  try {
    await f();
  } finally {
    AbortSignal.timeout = real;
    clearTimeout(alive);
  }
  return asked;
}

/** Like fetch from a server that never answers: pending until its signal aborts. */
export const unanswered = (/** @type {string} */ url, /** @type {RequestInit} */ init) => new Promise((_, fail) => {
  init.signal?.addEventListener('abort', () => fail(init.signal?.reason));
});

/** A media track that can be stopped. */
export class FakeTrack {
  /** @param {string} kind @param {string} deviceId */
  constructor(kind, deviceId) {
    this.kind = kind;
    this.deviceId = deviceId;
    this.readyState = 'live';
    this.enabled = true;
  }
  stop() { this.readyState = 'ended'; }
  getSettings() { return { deviceId: this.deviceId }; }
}

/** A MediaStream of fake tracks. */
export class FakeStream {
  /** @param {FakeTrack[]} [tracks] */
  constructor(tracks = []) { this.tracks = tracks; }
  getTracks() { return this.tracks; }
  getAudioTracks() { return this.tracks.filter((t) => t.kind === 'audio'); }
  getVideoTracks() { return this.tracks.filter((t) => t.kind === 'video'); }
  /** @param {FakeTrack} t */
  addTrack(t) { this.tracks.push(t); }
  /** @param {FakeTrack} t */
  removeTrack(t) { this.tracks = this.tracks.filter((x) => x !== t); }
}
// getMedia's last resort, an empty stream, is made with the global.
/** @type {any} */ (globalThis).MediaStream = FakeStream;

/**
 * navigator.mediaDevices with two microphones and two cameras. fail makes
 * every request fail with that error name; failVideo only those for video.
 * @param {{fail?: string, failVideo?: string}} [o]
 */
export function fakeDevices({ fail = '', failVideo = '' } = {}) {
  /** @type {any[]} what getUserMedia was asked for */
  const asked = [];
  const err = (/** @type {string} */ name) => Object.assign(new Error(name + ' (fake)'), { name });
  return {
    asked,
    /** @param {any} c */
    async getUserMedia(c) {
      asked.push(c);
      if (failVideo && c.video) throw err(failVideo);
      if (fail) throw err(fail);
      const id = (/** @type {any} */ x, /** @type {string} */ d) => (x && x.deviceId && x.deviceId.exact) || d;
      const tracks = [];
      if (c.audio) tracks.push(new FakeTrack('audio', id(c.audio, 'mic-1')));
      if (c.video) tracks.push(new FakeTrack('video', id(c.video, 'cam-1')));
      return new FakeStream(tracks);
    },
    async enumerateDevices() {
      return [['audioinput', 'mic-1'], ['audioinput', 'mic-2'], ['videoinput', 'cam-1'], ['videoinput', 'cam-2']]
        .map(([kind, deviceId]) => ({ kind, deviceId, label: deviceId, groupId: '' }));
    },
  };
}

/** An AudioContext whose analyser hears a steady tone of amplitude 0.2. */
export class FakeAudioContext {
  static made = 0;
  static closed = 0;
  constructor() { FakeAudioContext.made++; }
  createAnalyser() {
    return {
      fftSize: 2048,
      /** @param {Float32Array} buf */
      getFloatTimeDomainData(buf) { for (let i = 0; i < buf.length; i++) buf[i] = i % 2 ? 0.2 : -0.2; },
    };
  }
  createMediaStreamSource() { return { connect() {} }; }
  resume() { return Promise.resolve(); }
  close() { FakeAudioContext.closed++; return Promise.resolve(); }
}

/**
 * A link that follows the call protocol's outline without WebRTC: an
 * accepted link is connected at once. fail() drops its connection.
 */
export class FakeLink {
  /** @param {any} o */
  constructor(o) {
    this.o = o;
    this.id = o.id;
    this.peer = o.peer;
    this.outgoing = o.outgoing;
    this.state = o.outgoing ? 'calling' : 'ringing';
    this.reason = '';
    this.remote = null;
    this.flags = { mic: true, cam: true, share: false };
    this.manual = false;
    this.answered = Promise.resolve();
    /** @type {any[]} */
    this.tuned = [];
    /** @type {Record<string, any>} what is sent, by kind */
    this.sending = {};
    /** @type {any[]} the messages of the link it was handed */
    this.handled = [];
    this.started = false;
  }
  /** @param {string} s */
  move(s) {
    this.state = /** @type {any} */ (s);
    this.o.onChange(this);
  }
  /** @param {any} [extra] */
  start(extra) {
    this.started = true;
    this.o.send({ t: 'offer', call: this.id, ...extra });
    this.attach();
  }
  accept() {
    if (this.state !== 'ringing') return;
    this.attach();
    this.move('connecting');
    this.o.send({ t: 'accept', call: this.id });
    this.move('in call');
  }
  decline() {
    this.o.send({ t: 'decline', call: this.id });
    this.end('decline', 'Declined', false);
  }
  hangup() { this.end('hangup', 'Call ended', true); }
  /** @param {string} ev @param {string} reason @param {boolean} tell */
  end(ev, reason, tell) {
    if (this.state === 'idle') return;
    if (tell) this.o.send(ev === 'failed' ? { t: 'close', call: this.id, lost: true } : { t: 'close', call: this.id });
    this.reason = reason;
    this.move('idle');
  }
  fail() { this.end('failed', 'The connection was lost', true); }
  restart() { if (this.state === 'reconnecting') this.restarts = (this.restarts || 0) + 1; }
  /** @param {any} m */
  handle(m) {
    this.handled.push(m);
    if (m.t === 'accept' && this.state === 'calling') {
      this.move('connecting');
      this.move('in call');
    } else if (m.t === 'decline') this.end('declined', m.full ? 'The call is full' : m.busy ? 'Busy' : 'Declined', false);
    else if (m.t === 'close') this.end(m.lost ? 'failed' : 'closed', m.lost ? 'The connection was lost' : 'Call ended', false);
  }
  attach() { for (const t of this.o.tracks()) this.sending[t.kind] = t; }
  /** @param {string} kind @param {any} t */
  async replace(kind, t) { this.sending[kind] = t; }
  /** @param {any} l */
  async tune(l) { this.tuned.push(l); }
  async stats() { return { bytes: 100, level: 0 }; }
}

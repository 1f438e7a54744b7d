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

// Camera and microphone: getting them (with fallbacks), the words for why
// they failed, and the check before a call (a self-view and a level
// meter). No DOM here: the tests hand in fakes of mediaDevices and Web
// Audio.

/**
 * @typedef {{audio?: string, video?: string}} DeviceIds chosen device ids ('' or absent: the default)
 * @typedef {(f: () => void, ms: number) => () => void} Every runs f every ms until the returned function is called
 */

/** @type {Every} */
export const every = (f, ms) => {
  const t = setInterval(f, ms);
  return () => clearInterval(t);
};

/**
 * Asks for camera and microphone; falls back to audio only, then video
 * only, then nothing. If anything was refused, fail hears the refusal
 * that explains most: a denied permission over a missing device (browsers
 * report either for a blocked camera).
 * @param {DeviceIds} [ids] @param {(e: any) => void} [fail]
 * @param {MediaDevices} [md] @returns {Promise<MediaStream>}
 */
export async function getMedia(ids = {}, fail = () => {}, md = navigator.mediaDevices) {
  const audio = ids.audio ? { deviceId: { exact: ids.audio } } : true;
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, ...(ids.video ? { deviceId: { exact: ids.video } } : {}) };
  /** @type {any[]} */
  const errs = [];
  let s = null;
  for (const c of [{ audio, video }, { audio }, { video }]) {
    try {
      s = await md.getUserMedia(c);
      break;
    } catch (e) { errs.push(e); }
  }
  if (errs[0]) fail(errs.find((e) => e.name === 'NotAllowedError') || errs[0]);
  return s || new MediaStream();
}

/**
 * What a person is told when the camera or microphone (what: the missing
 * ones, in words) could not start, by the error getUserMedia gave.
 * @param {any} e @param {string} [what]
 */
export function mediaProblem(e, what = 'camera and microphone') {
  const name = e && e.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'Permission for the ' + what + ' was denied: allow it in the site settings by the address bar.';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'No ' + what.replace('and', 'or') + ' found.';
  if (name === 'NotReadableError' || name === 'AbortError') return 'The ' + what + ' could not start: another app may be using it.';
  return 'The ' + what + ' could not start' + (e && e.message ? ': ' + e.message : '.');
}

/** Which of camera and microphone a stream lacks, in words ('' for none). @param {MediaStream} s */
export function missing(s) {
  const a = s.getAudioTracks().length > 0, v = s.getVideoTracks().length > 0;
  return a && v ? '' : a ? 'camera' : v ? 'microphone' : 'camera and microphone';
}

/**
 * @typedef {'off'|'starting'|'on'} PreviewState
 * @typedef {{open: () => Promise<void>, close: () => void, take: () => MediaStream | null, show: (shown: boolean) => void}} Preview
 */

/**
 * The check before a call: opens camera and microphone with the chosen
 * devices, measures the microphone's level while shown, and hands its
 * stream to the next call, so the camera does not start twice. onChange
 * hears of every change: the state, the stream (null when off) and, in
 * words, what is missing and why ('' when nothing is).
 * @param {{md: MediaDevices, devices: DeviceIds, AC?: typeof AudioContext,
 *   every?: Every, onChange: (state: PreviewState, stream: MediaStream | null, problem: string) => void,
 *   onLevel: (level: number) => void, media?: typeof getMedia, log?: {warn: (...a: any[]) => void}}} o
 * @returns {Preview}
 */
export function preview(o) {
  /** @type {PreviewState} */
  let state = 'off';
  /** @type {MediaStream | null} */
  let stream = null;
  let problem = '';
  /** @type {(() => void) | null} stops the level meter */
  let stopMeter = null;
  const changed = () => o.onChange(state, stream, problem);

  /** Runs the level meter while on and shown (not in a call). @param {boolean} shown */
  const show = (shown) => {
    if (!shown || !stream) {
      stopMeter?.();
      stopMeter = null;
      return;
    }
    const AC = o.AC;
    if (stopMeter || !AC || !stream.getAudioTracks().length) return;
    try {
      const ctx = new AC();
      const an = ctx.createAnalyser();
      an.fftSize = 1024;
      ctx.createMediaStreamSource(stream).connect(an);
      const buf = new Float32Array(an.fftSize);
      ctx.resume().catch((e) => o.log?.warn('channels: meter:', e));
      const stop = (o.every || every)(() => {
        an.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const x of buf) sum += x * x;
        // The RMS in decibels, -60 dB (silence) to 0 dB (full scale), as meters show sound.
        o.onLevel(Math.max(0, 1 + Math.log10(Math.sqrt(sum / buf.length)) / 3));
      }, 100);
      stopMeter = () => {
        stop();
        o.onLevel(0);
        // Closing only frees the audio thread; a failure leaves nothing to undo.
        ctx.close().catch(() => {});
      };
    } catch (e) {
      o.log?.warn('channels: meter:', e);
    }
  };

  /** Stops camera, microphone and meter. */
  const close = () => {
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
    show(false);
    if (state === 'off') return;
    state = 'off';
    problem = '';
    changed();
  };

  return {
    async open() {
      if (state !== 'off') return;
      state = 'starting';
      problem = '';
      changed();
      /** @type {any} */
      let err = null;
      const s = await (o.media || getMedia)(o.devices, (e) => { err = e; }, o.md);
      if (state !== 'starting') { // closed meanwhile
        s.getTracks().forEach((t) => t.stop());
        return;
      }
      if (err) o.log?.warn('channels: camera check:', err);
      stream = s.getTracks().length ? s : null;
      state = stream ? 'on' : 'off'; // nothing started: off, saying why
      const what = missing(s);
      problem = what ? mediaProblem(err, what) : '';
      changed();
    },
    close,
    /** The stream for a call, if live; the check is off afterwards and the stream the call's. */
    take() {
      const s = stream;
      if (!s || !s.getTracks().some((t) => t.readyState === 'live')) return null;
      stream = null;
      close();
      return s;
    },
    show,
  };
}

// Camera and microphone: getting them (with fallbacks) and the words for
// why they failed. The check before a call (a self-view and a level meter)
// is check.js, loaded only when asked for. No DOM here: the tests hand in
// fakes of mediaDevices.

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
 * @param {any} e @param {string} what e.g. 'camera and microphone'
 */
export function mediaProblem(e, what) {
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

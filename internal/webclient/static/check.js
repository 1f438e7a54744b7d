// The camera check before a call: a self-view and a level meter. Loaded on
// demand (controller.js imports it with import() when a person asks for
// the check), so the page's first load does without it: it imports
// nothing, and what it needs of media.js (which the page has already) is
// handed in. No DOM here: the tests hand in fakes of mediaDevices and Web
// Audio.

/**
 * @typedef {import('./media.js').DeviceIds} DeviceIds
 * @typedef {'off'|'starting'|'on'} PreviewState
 * @typedef {{open: () => Promise<void>, close: () => void, take: () => MediaStream | null, show: (shown: boolean) => void}} Preview
 */

/**
 * The check before a call: opens camera and microphone with the chosen
 * devices, measures the microphone's level while shown, and hands its
 * stream to the next call, so the camera does not start twice. onChange
 * hears of every change: the state, the stream (null when off) and, in
 * words, what is missing and why ('' when nothing is). media, missing
 * and mediaProblem are media.js's (handed in rather than imported, so
 * that this file needs no other: an import of media.js would move it out
 * of the page's bundle into a third file loaded at once).
 * @param {{md: MediaDevices, devices: DeviceIds, AC?: typeof AudioContext,
 *   every: import('./media.js').Every, media: typeof import('./media.js').getMedia,
 *   missing: typeof import('./media.js').missing, mediaProblem: typeof import('./media.js').mediaProblem,
 *   onChange: (state: PreviewState, stream: MediaStream | null, problem: string) => void,
 *   onLevel: (level: number) => void, log?: {warn: (...a: any[]) => void}}} o
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
      const stop = o.every(() => {
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
      const s = await o.media(o.devices, (e) => { err = e; }, o.md);
      if (state !== 'starting') { // closed meanwhile
        s.getTracks().forEach((t) => t.stop());
        return;
      }
      if (err) o.log?.warn('channels: camera check:', err);
      stream = s.getTracks().length ? s : null;
      state = stream ? 'on' : 'off'; // nothing started: off, saying why
      const what = o.missing(s);
      problem = what ? o.mediaProblem(err, what) : '';
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

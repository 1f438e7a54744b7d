import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getMedia, mediaProblem, missing } from '../media.js';
import { preview } from '../check.js';
import { FakeStream, FakeTrack, fakeDevices, FakeAudioContext } from './fakes.js';

test('getMedia: both, else audio only, else video only, else nothing; the telling refusal reported', async () => {
  const cases = [
    { md: fakeDevices(), kinds: 'audio video', errors: [] },
    { md: fakeDevices({ failVideo: 'NotReadableError' }), kinds: 'audio', errors: ['NotReadableError'] },
    { md: fakeDevices({ fail: 'NotAllowedError' }), kinds: '', errors: ['NotAllowedError'] },
    // Chromium says "not found" for a blocked camera: the denied microphone explains more.
    { md: fakeDevices({ fail: 'NotAllowedError', failVideo: 'NotFoundError' }), kinds: '', errors: ['NotAllowedError'] },
  ];
  for (const c of cases) {
    /** @type {string[]} */
    const errors = [];
    const s = await getMedia({ audio: 'mic-2' }, (e) => errors.push(e.name), /** @type {any} */ (c.md));
    assert.equal(s.getTracks().map((t) => t.kind).join(' '), c.kinds);
    assert.deepEqual(errors, c.errors);
    if (c.kinds) assert.deepEqual(c.md.asked[0].audio, { deviceId: { exact: 'mic-2' } }, 'the chosen microphone');
  }
});

test('what a person is told', () => {
  const err = (/** @type {string} */ name) => Object.assign(new Error('x'), { name });
  assert.match(mediaProblem(err('NotAllowedError'), 'camera and microphone'), /^Permission for the camera and microphone was denied/);
  assert.match(mediaProblem(err('NotFoundError'), 'camera'), /^No camera found/);
  assert.match(mediaProblem(err('NotReadableError'), 'microphone'), /^The microphone could not start: another app may be using it/);
  assert.equal(mediaProblem(err('TypeError'), 'camera and microphone'), 'The camera and microphone could not start: x');
  assert.equal(mediaProblem(null, 'camera'), 'The camera could not start.');
  const t = (/** @type {string} */ k) => new FakeTrack(k, '');
  assert.equal(missing(/** @type {any} */ (new FakeStream([t('audio'), t('video')]))), '');
  assert.equal(missing(/** @type {any} */ (new FakeStream([t('audio')]))), 'camera');
  assert.equal(missing(/** @type {any} */ (new FakeStream([t('video')]))), 'microphone');
  assert.equal(missing(/** @type {any} */ (new FakeStream())), 'camera and microphone');
});

/** A camera check with fakes; changes and levels recorded. @param {any} md */
function check(md) {
  /** @type {any[]} */
  const changes = [];
  /** @type {number[]} */
  const levels = [];
  /** @type {Set<() => void>} */
  const timers = new Set();
  const p = preview({
    md, devices: {}, AC: /** @type {any} */ (FakeAudioContext), media: getMedia, missing, mediaProblem,
    every: (f) => { timers.add(f); return () => timers.delete(f); },
    onChange: (state, stream, problem) => changes.push({ state, stream, problem }),
    onLevel: (v) => levels.push(v),
    log: { warn: () => {} },
  });
  return { p, changes, levels, timers };
}

test('camera check: the meter runs only while shown, and stops with its audio context', async () => {
  const { p, changes, levels, timers } = check(fakeDevices());
  await p.open();
  assert.deepEqual(changes.map((c) => c.state), ['starting', 'on']);
  p.show(true);
  p.show(true); // once
  assert.equal(timers.size, 1);
  for (const f of timers) f();
  assert.ok(Math.abs(levels[0] - (1 + Math.log10(0.2) / 3)) < 1e-6, `level ${levels[0]}: RMS 0.2, -14 dB of 60`);
  const closed = FakeAudioContext.closed;
  p.show(false);
  assert.equal(timers.size, 0);
  assert.equal(levels.at(-1), 0, 'the meter drops to zero');
  assert.equal(FakeAudioContext.closed, closed + 1);
  p.show(true);
  const stream = changes.at(-1).stream;
  p.close();
  assert.equal(timers.size, 0);
  assert.ok(stream.getTracks().every((/** @type {any} */ t) => t.readyState === 'ended'), 'camera and microphone released');
  assert.deepEqual(changes.at(-1), { state: 'off', stream: null, problem: '' });
  assert.equal(p.take(), null, 'nothing to hand over when off');
});

test('camera check: closed while starting, its late stream is released', async () => {
  const md = fakeDevices();
  const { p, changes } = check(md);
  const opening = p.open();
  p.close();
  await opening;
  assert.deepEqual(changes.map((c) => c.state), ['starting', 'off']);
});

test('camera check: a busy camera leaves the microphone, and says so', async () => {
  const { p, changes } = check(fakeDevices({ failVideo: 'NotReadableError' }));
  await p.open();
  const last = changes.at(-1);
  assert.equal(last.state, 'on');
  assert.equal(last.stream.getVideoTracks().length, 0);
  assert.equal(last.problem, 'The camera could not start: another app may be using it.');
  const s = p.take();
  assert.equal(s, last.stream, 'the microphone goes to the call');
  assert.equal(changes.at(-1).state, 'off');
  assert.ok(s && s.getTracks().every((t) => t.readyState === 'live'), 'handed over running');
});

test('camera check: no devices at all', async () => {
  const { p, changes } = check(fakeDevices({ fail: 'NotFoundError' }));
  await p.open();
  assert.deepEqual(changes.at(-1), { state: 'off', stream: null, problem: 'No camera or microphone found.' });
});

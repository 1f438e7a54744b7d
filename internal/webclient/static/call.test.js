import { test } from 'node:test';
import assert from 'node:assert/strict';
import { transition, offerCollision, newCallId } from './call.js';

test('call state transitions', () => {
  const paths = [
    ['idle', ['place', 'accepted', 'connected', 'disconnected', 'connected', 'hangup'], 'idle'],
    ['idle', ['incoming', 'accept', 'connected', 'closed'], 'idle'],
    ['idle', ['incoming', 'decline'], 'idle'],
    ['idle', ['place', 'declined'], 'idle'],
    ['idle', ['place', 'timeout'], 'idle'],
    ['idle', ['place', 'accepted', 'connected'], 'in call'],
    ['idle', ['place', 'accepted', 'connected', 'disconnected'], 'reconnecting'],
  ];
  for (const [from, events, want] of paths) {
    let s = /** @type {any} */ (from);
    for (const e of /** @type {string[]} */ (events)) {
      const n = transition(s, e);
      assert.ok(n, `${s} --${e}--> nothing`);
      s = n;
    }
    assert.equal(s, want, String(events));
  }
  for (const [s, e] of [['idle', 'accept'], ['idle', 'connected'], ['calling', 'accept'], ['ringing', 'accepted'], ['in call', 'incoming']]) {
    assert.equal(transition(/** @type {any} */ (s), e), null, `${s} --${e}-->`);
  }
});

test('perfect negotiation: who ignores an incoming offer', () => {
  const cases = [
    { name: 'stable, no offer of ours', s: { type: 'offer', polite: false, makingOffer: false, signalingState: 'stable', settingAnswer: false }, want: { collision: false, ignore: false } },
    { name: 'glare, impolite ignores', s: { type: 'offer', polite: false, makingOffer: true, signalingState: 'stable', settingAnswer: false }, want: { collision: true, ignore: true } },
    { name: 'glare, polite yields', s: { type: 'offer', polite: true, makingOffer: true, signalingState: 'stable', settingAnswer: false }, want: { collision: true, ignore: false } },
    { name: 'have-local-offer, impolite ignores', s: { type: 'offer', polite: false, makingOffer: false, signalingState: 'have-local-offer', settingAnswer: false }, want: { collision: true, ignore: true } },
    { name: 'have-local-offer, polite rolls back', s: { type: 'offer', polite: true, makingOffer: false, signalingState: 'have-local-offer', settingAnswer: false }, want: { collision: true, ignore: false } },
    { name: 'offer while an answer is being applied', s: { type: 'offer', polite: false, makingOffer: false, signalingState: 'have-local-offer', settingAnswer: true }, want: { collision: false, ignore: false } },
    { name: 'answers never collide', s: { type: 'answer', polite: false, makingOffer: false, signalingState: 'have-local-offer', settingAnswer: false }, want: { collision: false, ignore: false } },
  ];
  for (const c of cases) assert.deepEqual(offerCollision(c.s), c.want, c.name);
});

test('call ids are random hex', () => {
  const a = newCallId();
  assert.match(a, /^[0-9a-f]{16}$/);
  assert.notEqual(a, newCallId());
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { transition, offerCollision, Call, RING_MS, RECOVER_MS } from '../call.js';
import { randomId } from '../codec.js';
import './fakes.js'; // a global MediaStream, for the peer's media shown once the timers run

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
  const a = randomId();
  assert.match(a, /^[0-9a-f]{16}$/);
  assert.notEqual(a, randomId());
});

/** A stand-in for RTCPeerConnection that records what the call does to it. */
class FakePC {
  constructor() {
    /** @type {string[]} */
    this.log = [];
    this.signalingState = 'stable';
    this.connectionState = 'new';
    /** @type {any} */
    this.localDescription = null;
    /** @type {any[]} */
    this.transceivers = [];
    /** @type {any} */ this.onnegotiationneeded = null;
    /** @type {any} */ this.onicecandidate = null;
    /** @type {any} */ this.onconnectionstatechange = null;
    /** @type {any} */ this.ontrack = null;
  }
  /** @param {string} kind @param {any} init */
  addTransceiver(kind, init) {
    this.log.push('transceiver ' + kind + ' ' + init.direction);
    this.transceivers.push({ direction: init.direction, receiver: { track: { kind } }, sender: { replaceTrack: async () => {} } });
  }
  getTransceivers() { return this.transceivers; }
  /** @param {any} d */
  async setRemoteDescription(d) {
    this.log.push('remote ' + d.type);
    if (d.type === 'offer') {
      this.signalingState = 'have-remote-offer';
      if (!this.transceivers.length) for (const kind of ['audio', 'video']) this.transceivers.push({ direction: 'recvonly', receiver: { track: { kind } }, sender: { replaceTrack: async () => {} } });
    } else this.signalingState = 'stable';
  }
  async setLocalDescription() {
    const type = this.signalingState === 'have-remote-offer' ? 'answer' : 'offer';
    this.log.push('local ' + type + ' ' + this.transceivers.map((t) => t.direction).join(','));
    this.signalingState = type === 'answer' ? 'stable' : 'have-local-offer';
    this.localDescription = { toJSON: () => ({ type, sdp: 'v=0' }) };
  }
  /** @param {any} c */
  async addIceCandidate(c) { this.log.push('ice ' + c.candidate); }
  close() { this.log.push('close'); }
  restartIce() { this.log.push('restartIce'); }
}

/** @param {boolean} outgoing @param {any[]} [tracks] what the page sends */
function newTestCall(outgoing, tracks = []) {
  /** @type {any[]} */
  const sent = [];
  /** @type {FakePC[]} */
  const pcs = [];
  const c = new Call({
    id: 'c1', peer: 'p', outgoing, iceServers: [],
    send: (m) => sent.push(m), onChange: () => {},
    PC: /** @type {any} */ (function PC() { const pc = new FakePC(); pcs.push(pc); return pc; }),
    tracks: () => tracks,
  });
  return { c, sent, pcs };
}

test('caller: invites, offers at once, connects on accept, hangs up', async () => {
  const { c, sent, pcs } = newTestCall(true);
  c.start();
  assert.equal(c.state, 'calling');
  assert.deepEqual(sent[0], { t: 'offer', call: 'c1' });
  assert.deepEqual(pcs[0].log, ['transceiver audio sendrecv', 'transceiver video sendrecv']);
  await pcs[0].onnegotiationneeded();
  assert.deepEqual(sent[1], { t: 'sdp', d: { type: 'offer', sdp: 'v=0' }, call: 'c1' });
  await c.handle({ t: 'accept', call: 'c1' });
  assert.equal(c.state, 'connecting');
  await c.handle({ t: 'sdp', call: 'c1', d: { type: 'answer', sdp: 'v=0' } });
  pcs[0].onconnectionstatechange(pcs[0].connectionState = 'connected');
  assert.equal(c.state, 'in call');
  c.hangup();
  assert.equal(c.state, 'idle');
  assert.deepEqual(sent[sent.length - 1], { t: 'close', call: 'c1' });
  assert.ok(pcs[0].log.includes('close'));
});

test('callee: prepares its answer while ringing, sends nothing until accepted', async () => {
  const { c, sent, pcs } = newTestCall(false);
  assert.equal(c.state, 'ringing');
  await c.handle({ t: 'sdp', call: 'c1', d: { type: 'offer', sdp: 'v=0' } });
  await c.handle({ t: 'ice', call: 'c1', c: { candidate: 'a' } });
  assert.deepEqual(sent, [], 'nothing leaves while ringing');
  assert.deepEqual(pcs[0].log, ['remote offer', 'local answer sendrecv,sendrecv'], 'caller candidates kept');
  await c.accept();
  assert.equal(c.state, 'connecting');
  assert.deepEqual(sent.map((m) => m.t), ['accept', 'sdp']);
  assert.equal(sent[1].d.type, 'answer');
  assert.deepEqual(pcs[0].log, ['remote offer', 'local answer sendrecv,sendrecv', 'ice a']);
  // The callee makes no offer of its own before its first answer; after it, it may.
  await c.handle({ t: 'close', call: 'c1' });
  assert.equal(c.state, 'idle');
  assert.equal(c.reason, 'Call ended');
});

test('callee: declining tells the caller; caller: decline and busy end the call', async () => {
  const callee = newTestCall(false);
  callee.c.decline();
  assert.equal(callee.c.state, 'idle');
  assert.deepEqual(callee.sent, [{ t: 'decline', call: 'c1' }]);

  const caller = newTestCall(true);
  caller.c.start();
  await caller.c.handle({ t: 'decline', call: 'c1', busy: true });
  assert.equal(caller.c.state, 'idle');
  assert.equal(caller.c.reason, 'Busy');
});

test('impolite callee ignores a colliding offer; polite caller yields', async () => {
  const callee = newTestCall(false);
  await callee.c.accept();
  const pc = callee.pcs[0];
  await callee.c.handle({ t: 'sdp', call: 'c1', d: { type: 'offer', sdp: 'v=0' } });
  // Now renegotiating: the callee's own offer is out when the caller's arrives.
  await pc.onnegotiationneeded();
  assert.equal(pc.signalingState, 'have-local-offer');
  await callee.c.handle({ t: 'sdp', call: 'c1', d: { type: 'offer', sdp: 'v=0' } });
  assert.equal(pc.log.filter((l) => l === 'remote offer').length, 1, 'colliding offer ignored');

  const caller = newTestCall(true);
  caller.c.start();
  const cpc = caller.pcs[0];
  await cpc.onnegotiationneeded();
  await caller.c.handle({ t: 'accept', call: 'c1' });
  await caller.c.handle({ t: 'sdp', call: 'c1', d: { type: 'offer', sdp: 'v=0' } });
  assert.ok(cpc.log.includes('remote offer'), 'polite side took the colliding offer');
  assert.equal(caller.sent[caller.sent.length - 1].d.type, 'answer');
  caller.c.hangup();
  callee.c.hangup();
});

test('the peer\'s media reaches the view only once our own description has left', async () => {
  const had = globalThis.MediaStream;
  /** @type {any} */ (globalThis).MediaStream = class { /** @param {any[]} t */ constructor(t = []) { this.t = t; } getTracks() { return this.t; } /** @param {any} x */ addTrack(x) { this.t.push(x); } };
  const tick = () => new Promise((r) => setTimeout(r, 5));
  try {
    const caller = newTestCall(true);
    caller.c.start();
    await tick();
    assert.equal(caller.c.remote, null, 'not before the offer is made');
    await caller.pcs[0].onnegotiationneeded();
    await tick();
    assert.deepEqual(caller.c.remote?.getTracks().map((/** @type {any} */ t) => t.kind), ['audio', 'video'], 'the receivers, while the callee rings');

    const callee = newTestCall(false);
    callee.pcs.length = 0;
    await callee.c.handle({ t: 'sdp', call: 'c1', d: { type: 'offer', sdp: 'v=0' } });
    await tick();
    assert.ok(callee.c.remote, 'shown once the answer is ready');
    assert.deepEqual(callee.sent, [], 'still nothing sent while ringing');
    callee.c.hangup();
    caller.c.hangup();
  } finally {
    /** @type {any} */ (globalThis).MediaStream = had;
  }
});

/**
 * A call in the state named, with Node's fake timers (set before the call
 * starts its ring timer). @param {any} t @param {boolean} outgoing
 * @param {'ringing'|'calling'|'connecting'|'in call'} state
 */
async function callIn(t, outgoing, state) {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const k = newTestCallWithPc(outgoing);
  const { c, pcs } = k;
  if (outgoing) {
    c.start();
    await pcs[0].onnegotiationneeded();
    if (state !== 'calling') {
      await c.handle({ t: 'accept', call: 'c1' });
      await c.handle({ t: 'sdp', call: 'c1', d: { type: 'answer', sdp: 'v=0' } });
    }
  } else {
    await c.handle({ t: 'sdp', call: 'c1', d: { type: 'offer', sdp: 'v=0' } });
    if (state !== 'ringing') await c.accept();
  }
  if (state === 'in call') k.pc('connected');
  assert.equal(c.state, state);
  return k;
}

/** newTestCall's parts, and pc(s) to move its connection to state s. @param {boolean} outgoing */
function newTestCallWithPc(outgoing) {
  const k = newTestCall(outgoing);
  return { ...k, pc: (/** @type {string} */ s) => k.pcs[0].onconnectionstatechange(k.pcs[0].connectionState = s) };
}

test('a broken connection has RECOVER_MS in all to recover, whatever it passes through meanwhile', async (t) => {
  for (const outgoing of [true, false]) {
    const { c, sent, pcs, pc } = await callIn(t, outgoing, 'in call');
    pc('disconnected');
    assert.equal(c.state, 'reconnecting');
    t.mock.timers.tick(RECOVER_MS - 5000);
    pc('failed');
    assert.equal(pcs[0].log.includes('restartIce'), outgoing, 'the polite side restarts ICE');
    t.mock.timers.tick(3000);
    pc('connecting'); // the ICE restart trying
    t.mock.timers.tick(1999);
    pc('disconnected');
    assert.equal(c.state, 'reconnecting', 'not yet');
    t.mock.timers.tick(1);
    assert.equal(c.state, 'idle', 'ended at the deadline set when the connection broke');
    assert.equal(c.reason, 'The connection was lost');
    assert.deepEqual(sent[sent.length - 1], { t: 'close', lost: true, call: 'c1' }, 'the peer is told it failed');
    assert.ok(pcs[0].log.includes('close'));
    t.mock.timers.reset();
  }
});

test('signalling back: a broken connection on the polite side restarts ICE again', async (t) => {
  for (const outgoing of [true, false]) {
    const { c, pcs, pc } = await callIn(t, outgoing, 'in call');
    c.restart();
    assert.ok(!pcs[0].log.includes('restartIce'), 'nothing to restart while connected');
    pc('disconnected');
    c.restart();
    assert.equal(pcs[0].log.filter((l) => l === 'restartIce').length, outgoing ? 1 : 0, 'the polite side restarts');
    t.mock.timers.reset();
  }
});

test('a connection that recovers in time keeps the call, and the next break gets a new deadline', async (t) => {
  const { c, pc } = await callIn(t, true, 'in call');
  pc('disconnected');
  t.mock.timers.tick(RECOVER_MS - 1);
  pc('connected');
  assert.equal(c.state, 'in call');
  t.mock.timers.tick(RECOVER_MS * 3);
  assert.equal(c.state, 'in call', 'recovered: no deadline left');
  pc('failed');
  t.mock.timers.tick(RECOVER_MS - 1);
  assert.equal(c.state, 'reconnecting');
  t.mock.timers.tick(1);
  assert.equal(c.state, 'idle');
  assert.equal(c.reason, 'The connection was lost');
});

test('a call whose connection never comes up ends with a reason', async (t) => {
  for (const outgoing of [true, false]) {
    const { c, sent, pc } = await callIn(t, outgoing, 'connecting');
    pc('connecting');
    t.mock.timers.tick(RECOVER_MS / 2);
    pc('failed');
    pc('connecting');
    t.mock.timers.tick(RECOVER_MS / 2 - 1);
    assert.equal(c.state, 'connecting');
    t.mock.timers.tick(1);
    assert.equal(c.state, 'idle');
    assert.equal(c.reason, 'The call could not connect');
    assert.deepEqual(sent[sent.length - 1], { t: 'close', lost: true, call: 'c1' });
    t.mock.timers.reset();
  }
  const { c, pc } = await callIn(t, false, 'connecting');
  t.mock.timers.tick(RECOVER_MS - 1);
  pc('connected');
  t.mock.timers.tick(RECOVER_MS * 3);
  assert.equal(c.state, 'in call', 'connected in time: no deadline left');
});

test('ringing ends on time whatever the connection does meanwhile', async (t) => {
  for (const [outgoing, state, reason] of /** @type {const} */ ([[true, 'calling', 'No answer'], [false, 'ringing', 'Missed call']])) {
    const { c, pc } = await callIn(t, outgoing, state);
    pc('connecting');
    pc('failed');
    pc('new');
    t.mock.timers.tick(RING_MS - 1);
    assert.equal(c.state, state);
    t.mock.timers.tick(1);
    assert.equal(c.state, 'idle');
    assert.equal(c.reason, reason);
    t.mock.timers.reset();
  }
});

test('what the page sends goes on the caller\'s link at once, and on the callee\'s once it answers', async () => {
  const mic = { kind: 'audio' }, cam = { kind: 'video' };
  for (const outgoing of [true, false]) {
    const { c, pcs } = newTestCall(outgoing, [mic, cam]);
    /** @type {any[]} */
    const put = [];
    const PC = c.o.PC;
    c.o.PC = /** @type {any} */ (function wrapped() {
      const pc = new /** @type {any} */ (PC)();
      const add = pc.addTransceiver.bind(pc);
      pc.addTransceiver = (/** @type {string} */ k, /** @type {any} */ i) => { add(k, i); pc.transceivers.at(-1).sender.replaceTrack = async (/** @type {any} */ t) => { put.push(t); }; };
      return pc;
    });
    if (outgoing) {
      c.start();
      await new Promise((r) => setTimeout(r, 1));
      assert.deepEqual(put, [mic, cam], 'the caller sends from the start');
    } else {
      await c.handle({ t: 'sdp', call: 'c1', d: { type: 'offer', sdp: 'v=0' } });
      // The callee's transceivers come from the offer: watch their senders.
      /** @type {any[]} */
      const got = [];
      for (const t of pcs[0].transceivers) t.sender.replaceTrack = async (/** @type {any} */ x) => { got.push(x); };
      await c.replace('video', cam);
      assert.deepEqual(got, [cam], 'replaced once answered');
    }
    c.hangup();
  }
});

test('tune limits the video sender; stats add up what came in and the peer\'s audio level', async () => {
  const { c, pcs } = newTestCall(true);
  c.start();
  const tr = pcs[0].transceivers.find((t) => t.receiver.track.kind === 'video');
  let params = { encodings: [{ maxBitrate: 1 }] };
  tr.sender.getParameters = () => params;
  tr.sender.setParameters = async (/** @type {any} */ p) => { params = p; };
  await c.tune({ maxBitrate: 440000, scaleResolutionDownBy: 2 });
  assert.deepEqual(params.encodings, [{ maxBitrate: 440000, scaleResolutionDownBy: 2 }]);
  await c.tune({});
  assert.deepEqual(params.encodings, [{}], 'one peer: the browser decides again');
  // Parameters gone stale (a negotiation in between): read again, once.
  let refusals = 1;
  tr.sender.setParameters = async (/** @type {any} */ p) => {
    if (refusals-- > 0) throw Object.assign(new Error('stale'), { name: 'InvalidStateError' });
    params = p;
  };
  await c.tune({ maxBitrate: 733333 });
  assert.deepEqual(params.encodings, [{ maxBitrate: 733333 }]);
  /** @type {any} */ (pcs[0]).getStats = async () => new Map([
    ['a', { type: 'inbound-rtp', kind: 'audio', bytesReceived: 100, audioLevel: 0.3 }],
    ['v', { type: 'inbound-rtp', kind: 'video', bytesReceived: 900 }],
    ['o', { type: 'outbound-rtp', kind: 'video', bytesSent: 5000 }],
  ]);
  assert.deepEqual(await c.stats(), { bytes: 1000, level: 0.3 });
  c.hangup();
});

test('a close that says the connection failed ends the call as failed, not as hung up', async () => {
  const { c } = newTestCall(true);
  c.start();
  await c.handle({ t: 'accept', call: 'c1' });
  await c.handle({ t: 'close', call: 'c1', lost: true });
  assert.equal(c.state, 'idle');
  assert.equal(c.reason, 'The connection was lost');
});

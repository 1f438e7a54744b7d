import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Group, limits, UPLOAD, VOUCH_MS, RELINKS } from '../group.js';
import { FakeStream, FakeTrack, FakeLink } from './fakes.js';

/**
 * Pages in one channel, their groups joined by a relay that delivers each
 * sender's messages in order, one message at a time, until all is quiet.
 * @param {string[]} ids @param {number} [max]
 */
function pages(ids, max = 6) {
  /** @type {{from: string, to: string, m: any}[]} */
  const queue = [];
  let now = 1000;
  /** @type {Record<string, Group>} */
  const g = {};
  /** @type {Record<string, string[]>} */
  const notices = {};
  /** @type {Record<string, any[]>} */
  const sent = {};
  let n = 0;
  for (const self of ids) {
    notices[self] = [];
    sent[self] = [];
    g[self] = new Group({
      self, max, newId: () => self + '-' + ++n, devices: {},
      send: (to, m) => { queue.push({ from: self, to, m }); sent[self].push({ to, m }); },
      onChange: () => {}, notice: (t) => notices[self].push(t),
      ice: () => ({ servers: [] }),
      media: async () => /** @type {any} */ (new FakeStream([new FakeTrack('audio', 'mic'), new FakeTrack('video', 'cam')])),
      known: (p) => ids.includes(p), name: (p) => p.toUpperCase(),
      newLink: (o) => /** @type {any} */ (new FakeLink(o)),
      now: () => now,
      log: { warn() {} },
    });
  }
  /** @type {((q: {from: string, to: string, m: any}) => boolean) | null} messages held back */
  let holding = null;
  /** @type {{from: string, to: string, m: any}[]} */
  const held = [];
  return {
    g, notices, sent,
    pass: (/** @type {number} */ ms) => { now += ms; },
    /** Holds back the messages pred picks (a relay slow on one path) until release. @param {(q: {from: string, to: string, m: any}) => boolean} pred */
    hold(pred) { holding = pred; },
    release() {
      holding = null;
      queue.push(...held.splice(0));
    },
    /** Delivers until nothing is left to deliver; a message to nobody is lost. */
    async run() {
      for (let i = 0; i < 10000; i++) {
        await new Promise((r) => setImmediate(r)); // not a timer: tests may mock those
        const q = queue.shift();
        if (!q) return;
        if (holding?.(q)) {
          held.push(q);
          continue;
        }
        const to = g[q.to];
        if (!to) continue;
        if (q.m.t === 'offer') to.offer(q.from, q.m);
        else await to.receive(q.from, q.m);
      }
      throw new Error('the pages never went quiet');
    },
  };
}

/** from calls to, who accepts. @param {ReturnType<typeof pages>} p @param {string} from @param {string} to */
async function connect(p, from, to) {
  p.g[from].place(to);
  await p.run();
  p.g[to].accept();
  await p.run();
}

/** aa, bb and cc in one call. @param {ReturnType<typeof pages>} p */
async function threeInCall(p) {
  await connect(p, 'aa', 'bb');
  await connect(p, 'aa', 'cc');
}

/** aa, bb and cc in one call; then aa adds dd while bb adds ee, both accepting. @param {ReturnType<typeof pages>} p */
async function twoAddedAtOnce(p) {
  await threeInCall(p);
  p.g.aa.place('dd');
  p.g.bb.place('ee');
  await p.run();
  p.g.dd.accept();
  p.g.ee.accept();
  await p.run();
}

/** Each page's peers in call, sorted. @param {Record<string, Group>} g */
function mesh(g) {
  /** @type {Record<string, string>} */
  const out = {};
  for (const [id, x] of Object.entries(g)) out[id] = [...x.links.values()].filter((l) => l.state === 'in call').map((l) => l.peer).sort().join(',');
  return out;
}

test('a call of two, then a third added by a member: the newcomer links with everyone, nobody rings twice', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  assert.equal(p.g.aa.place('bb'), '');
  await p.run();
  assert.equal(p.g.bb.state, 'ringing');
  assert.deepEqual(p.g.bb.show().request, { id: 'aa', name: 'AA', join: false });
  p.g.bb.accept();
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb', bb: 'aa', cc: '' });
  assert.equal(p.g.aa.place('cc'), '');
  await p.run();
  assert.equal(p.g.cc.state, 'ringing', 'the one added rings');
  p.g.cc.accept();
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb,cc', bb: 'aa,cc', cc: 'aa,bb' });
  assert.equal(p.g.bb.request, null, 'bb let cc in on aa\'s word, without ringing');
  // Each page sends its media to both peers.
  for (const x of Object.values(p.g)) for (const l of x.links.values()) assert.ok(/** @type {any} */ (l).sending.video, 'video on every link');
  // And its upload is shared among them.
  const tuned = /** @type {any} */ (p.g.aa.links.get('bb')).tuned.at(-1);
  assert.deepEqual(tuned, limits(2, false));
});

test('asking to join a running call: one member accepts, the newcomer links with all', async () => {
  const p = pages(['aa', 'bb', 'cc', 'dd']);
  await threeInCall(p);
  assert.equal(p.g.bb.canPlace(), true, 'in a call, nobody ringing: Add');
  // dd presses Call on bb, who is in a call with aa and cc.
  p.g.dd.place('bb');
  assert.equal(p.g.dd.canPlace(), false, 'calling: nothing more to place');
  await p.run();
  assert.equal(p.g.bb.canPlace(), false, 'someone asks: answer first');
  assert.equal(p.g.bb.state, 'in call', 'the call goes on while dd asks');
  assert.deepEqual(p.g.bb.show().request, { id: 'dd', name: 'DD', join: true });
  assert.equal(p.g.aa.request, null, 'only the one asked rings');
  p.g.bb.accept();
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb,cc,dd', bb: 'aa,cc,dd', cc: 'aa,bb,dd', dd: 'aa,bb,cc' });
});

test('two calls merge into one', async () => {
  const p = pages(['aa', 'bb', 'cc', 'dd']);
  p.g.aa.place('bb');
  p.g.cc.place('dd');
  await p.run();
  p.g.bb.accept();
  p.g.dd.accept();
  await p.run();
  await connect(p, 'aa', 'cc');
  assert.deepEqual(mesh(p.g), { aa: 'bb,cc,dd', bb: 'aa,cc,dd', cc: 'aa,bb,dd', dd: 'aa,bb,cc' });
});

test('two newcomers added at once by two members: nobody is left half connected', async () => {
  const p = pages(['aa', 'bb', 'cc', 'dd', 'ee']);
  await twoAddedAtOnce(p);
  assert.deepEqual(mesh(p.g), { aa: 'bb,cc,dd,ee', bb: 'aa,cc,dd,ee', cc: 'aa,bb,dd,ee', dd: 'aa,bb,cc,ee', ee: 'aa,bb,cc,dd' });
});

test('glare among three: each calls the next at once, each accepts; one link per pair', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  p.g.aa.place('bb');
  p.g.bb.place('cc');
  p.g.cc.place('aa');
  await p.run();
  for (const x of Object.values(p.g)) {
    assert.equal(x.show().request?.join, true, 'each sees a request beside its own call');
    x.accept();
  }
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb,cc', bb: 'aa,cc', cc: 'aa,bb' });
  for (const x of Object.values(p.g)) assert.equal(x.links.size, 2);
});

test('crossing calls between two: the smaller id\'s call wins, taken without ringing', async () => {
  const p = pages(['aa', 'bb']);
  p.g.aa.place('bb');
  p.g.bb.place('aa');
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb', bb: 'aa' });
  assert.equal(p.g.aa.links.get('bb')?.id, p.g.bb.links.get('aa')?.id, 'one link');
  assert.ok(!Object.values(p.sent).flat().some((s) => s.m.t === 'decline'), 'nobody is told busy');
});

test('a failing link is made again, a few times; then dropped and told, the call going on with the others', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  await threeInCall(p);
  for (let i = 0; i < RELINKS; i++) {
    const old = p.g.aa.links.get('bb');
    /** @type {any} */ (old).fail();
    await p.run();
    assert.deepEqual(mesh(p.g), { aa: 'bb,cc', bb: 'aa,cc', cc: 'aa,bb' }, 'linked again, ' + (i + 1));
    assert.notEqual(p.g.aa.links.get('bb'), old, 'a new link');
    assert.equal(p.g.bb.request, null, 'nobody asked');
  }
  assert.deepEqual(p.notices.aa, [], 'nothing to tell while it recovers');
  /** @type {any} */ (p.g.bb.links.get('aa')).fail(); // the one too many
  await p.run();
  // (A link that held a minute starts its count afresh: see the next test.)
  assert.deepEqual(mesh(p.g), { aa: 'cc', bb: 'cc', cc: 'aa,bb' });
  assert.deepEqual(p.notices.aa, ['BB: The connection was lost']);
  assert.deepEqual(p.notices.bb, ['AA: The connection was lost']);
  assert.equal(p.g.aa.state, 'in call');
  assert.equal(p.g.bb.state, 'in call');
});

test('a link that held a minute before failing is made again, however often it failed before', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  await threeInCall(p);
  for (let i = 0; i < RELINKS + 2; i++) {
    p.pass(61000);
    /** @type {any} */ (p.g.aa.links.get('bb')).fail();
    await p.run();
    assert.deepEqual(mesh(p.g), { aa: 'bb,cc', bb: 'aa,cc', cc: 'aa,bb' }, 'linked again, ' + (i + 1));
  }
});

test('a call of two whose link fails ends; it is not made again', async () => {
  const p = pages(['aa', 'bb']);
  await connect(p, 'aa', 'bb');
  /** @type {any} */ (p.g.aa.links.get('bb')).fail();
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: '', bb: '' });
  assert.equal(p.g.aa.reason, 'The connection was lost');
  assert.equal(p.g.bb.reason, 'The connection was lost');
});

test('hanging up leaves the others connected; the call ends when one is left', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  await threeInCall(p);
  const local = p.g.cc.local;
  p.g.cc.hangup();
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb', bb: 'aa', cc: '' });
  assert.equal(p.g.cc.state, 'idle');
  assert.ok(local?.getTracks().every((t) => /** @type {any} */ (t).readyState === 'ended'), 'the leaver\'s camera is released');
  assert.deepEqual(p.notices.aa, [], 'a peer leaving is no failure');
  p.g.bb.hangup();
  await p.run();
  assert.equal(p.g.aa.state, 'idle');
  assert.equal(p.g.aa.reason, 'Call ended');
  assert.equal(p.g.aa.local, null);
});

test('the size cap: a full call refuses one more, by Add and by asking to join', async () => {
  const p = pages(['aa', 'bb', 'cc', 'dd'], 3);
  await threeInCall(p);
  assert.equal(p.g.aa.place('dd'), 'The call is full (3 people)');
  p.g.dd.place('bb');
  await p.run();
  assert.equal(p.g.bb.request, null, 'nobody rings for a full call');
  assert.equal(p.g.dd.state, 'idle');
  assert.equal(p.g.dd.reason, 'The call is full');
  // Two calls whose sum is over the cap do not merge.
  const q = pages(['aa', 'bb', 'cc', 'dd'], 3);
  q.g.aa.place('bb');
  q.g.cc.place('dd');
  await q.run();
  q.g.bb.accept();
  q.g.dd.accept();
  await q.run();
  q.g.aa.place('cc');
  await q.run();
  assert.equal(q.g.cc.request, null);
  assert.deepEqual(mesh(q.g), { aa: 'bb', bb: 'aa', cc: 'dd', dd: 'cc' });
  assert.deepEqual(q.notices.aa, ['CC did not join: The call is full']);
});

test('two newcomers at once into a call with room for one: neither is left half connected', async () => {
  const p = pages(['aa', 'bb', 'cc', 'dd', 'ee'], 4);
  await twoAddedAtOnce(p);
  const m = mesh(p.g);
  // Whoever is in the call is linked with everyone else in it.
  const inCall = Object.keys(m).filter((id) => m[id]);
  for (const id of inCall) assert.equal(m[id], inCall.filter((x) => x !== id).join(','), JSON.stringify(m));
  assert.ok(inCall.length <= 4, JSON.stringify(m));
  for (const id of ['dd', 'ee']) if (!m[id]) assert.equal(p.g[id].reason, 'The call is full', JSON.stringify(m));
});

test('only a member speaks for the call: a roster from someone not in it links nobody, and a stranger\'s offer rings', async () => {
  const p = pages(['aa', 'bb', 'mm']);
  await connect(p, 'aa', 'bb');
  // mm, in no call with aa, claims to vouch for itself and tells aa of bb.
  await p.g.aa.receive('mm', { t: 'roster', call: 'x', peers: ['mm'] });
  p.g.mm.place('aa');
  await p.run();
  assert.deepEqual(p.g.aa.show().request, { id: 'mm', name: 'MM', join: true }, 'mm must be let in by a person');
  assert.deepEqual(mesh(p.g), { aa: 'bb', bb: 'aa', mm: '' });
  // A vouch expires.
  p.g.aa.decline();
  await p.run();
  p.g.aa.vouched.set('mm', 1);
  p.pass(VOUCH_MS);
  p.g.mm.place('aa');
  await p.run();
  assert.equal(p.g.aa.request?.peer, 'mm');
});

test('screen sharing replaces the camera on every link, tells the peers, and stops back to the camera', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  const screen = new FakeTrack('video', 'screen');
  /** @type {any} */ (screen).addEventListener = () => {};
  p.g.aa.o.display = async () => /** @type {any} */ (new FakeStream([screen]));
  await threeInCall(p);
  await p.g.aa.share();
  await p.run();
  for (const l of p.g.aa.links.values()) assert.equal(/** @type {any} */ (l).sending.video, screen);
  assert.equal(/** @type {any} */ (screen).contentHint, 'detail');
  assert.equal(p.g.bb.show().tiles.find((t) => t.id === 'aa')?.sharing, true);
  assert.deepEqual(/** @type {any} */ (p.g.aa.links.get('bb')).tuned.at(-1), limits(2, true));
  await p.g.aa.share(); // Stop sharing
  await p.run();
  assert.equal(screen.readyState, 'ended');
  for (const l of p.g.aa.links.values()) assert.equal(/** @type {any} */ (l).sending.video.deviceId, 'cam');
  assert.equal(p.g.cc.show().tiles.find((t) => t.id === 'aa')?.sharing, false);
});

test('mute and camera off reach the peers\' tiles', async () => {
  const p = pages(['aa', 'bb']);
  await connect(p, 'aa', 'bb');
  p.g.aa.toggleMic();
  await p.g.aa.toggleCamera();
  await p.run();
  const tile = p.g.bb.show().tiles[0];
  assert.deepEqual([tile.id, tile.mic, tile.cam], ['aa', false, false]);
  assert.equal(/** @type {any} */ (p.g.aa.links.get('bb')).sending.video, null, 'camera off: nothing sent');
});

test('limits: one peer is the browser\'s; several share the upload, never more than it', () => {
  assert.deepEqual(limits(1, false), {});
  for (let n = 2; n <= 5; n++) {
    const l = limits(n, false);
    assert.ok(/** @type {number} */ (l.maxBitrate) * n <= UPLOAD, `${n} peers`);
  }
  assert.equal(limits(5, false).scaleResolutionDownBy, 2);
  assert.equal(limits(5, true).scaleResolutionDownBy, 1, 'a screen keeps its resolution');
});

test('signalling back after a loss: links still recovering restart ICE, the others are left alone', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  await threeInCall(p);
  const toB = /** @type {any} */ (p.g.aa.links.get('bb')), toC = /** @type {any} */ (p.g.aa.links.get('cc'));
  toB.move('reconnecting');
  assert.equal(p.g.aa.show().tiles.find((t) => t.id === 'bb')?.problem, 'Connection lost, reconnecting…', 'the tile says so');
  assert.equal(p.g.aa.state, 'in call', 'the call goes on');
  p.g.aa.recover();
  assert.equal(toB.restarts, 1);
  assert.equal(toC.restarts, undefined);
});


test('members\' offers that reach a newcomer before the word letting them in wait for it, unseen', async () => {
  const p = pages(['aa', 'bb', 'cc', 'dd']);
  await threeInCall(p);
  // dd asks bb; bb's roster to dd is slow (behind bb's other messages).
  p.hold((q) => q.from === 'bb' && q.to === 'dd' && q.m.t === 'roster');
  await connect(p, 'dd', 'bb');
  assert.equal(p.g.dd.request, null, 'nothing rings at dd');
  assert.equal(p.g.dd.waiting(), 2, 'aa\'s and cc\'s offers wait');
  assert.ok(!p.sent.dd.some((s) => s.m.t === 'decline'), 'neither is refused as busy');
  p.release();
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb,cc,dd', bb: 'aa,cc,dd', cc: 'aa,bb,dd', dd: 'aa,bb,cc' });
  // Links that waited are links like any other once taken: the one who let
  // dd in leaves, and dd stays with the others.
  p.g.bb.hangup();
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'cc,dd', bb: '', cc: 'aa,dd', dd: 'aa,cc' });
  assert.equal(p.g.dd.state, 'in call');
});

test('an offer on a member\'s word that no word follows is declined after a while', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const p = pages(['aa', 'bb', 'cc']);
  await connect(p, 'aa', 'bb');
  // cc claims to join aa's call on a member's word nobody gave.
  p.g.cc.begin(true);
  p.g.cc.link('aa', false);
  await p.run();
  assert.equal(p.g.aa.waiting(), 1);
  assert.equal(p.g.aa.request, null, 'unseen');
  t.mock.timers.tick(10000);
  await p.run();
  assert.equal(p.g.aa.waiting(), 0);
  assert.deepEqual(mesh(p.g), { aa: 'bb', bb: 'aa', cc: '' });
  t.mock.timers.reset();
});

test('at the cap, a member\'s offer racing the word letting it in is not taken for a whole call', async () => {
  const p = pages(['aa', 'bb', 'cc'], 3);
  await connect(p, 'aa', 'bb');
  p.hold((q) => q.from === 'aa' && q.to === 'cc' && q.m.t === 'roster');
  await connect(p, 'aa', 'cc');
  p.release();
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb,cc', bb: 'aa,cc', cc: 'aa,bb' });
  assert.ok(!Object.values(p.sent).flat().some((s) => s.m.full), 'nobody was told the call is full');
});

test('someone who left must ask again to come back', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  await threeInCall(p);
  p.g.cc.hangup();
  await p.run();
  p.g.cc.place('bb');
  await p.run();
  assert.deepEqual(p.g.bb.show().request, { id: 'cc', name: 'CC', join: true }, 'bb is asked');
  assert.deepEqual(mesh(p.g), { aa: 'bb', bb: 'aa', cc: '' });
});

test('a call that could not start leaves the camera off', async () => {
  const p = pages(['aa', 'bb']);
  let asked = 0;
  const media = p.g.aa.o.media;
  p.g.aa.o.media = (f) => { asked++; return media(f); };
  p.g.aa.o.newLink = (o) => /** @type {any} */ (Object.assign(new FakeLink(o), { start() { throw new Error('no peer connection'); } }));
  p.g.aa.place('bb');
  await p.run();
  assert.equal(p.g.aa.state, 'idle');
  assert.equal(p.g.aa.reason, 'The call could not start');
  assert.equal(asked, 0, 'the camera was never asked for');
});

test('offers waiting on a word do not outlive the call they would join', async () => {
  const p = pages(['aa', 'bb', 'ss']);
  await connect(p, 'aa', 'bb');
  p.g.ss.begin(true);
  p.g.ss.link('aa', false); // a join offer on a word nobody gave
  await p.run();
  assert.equal(p.g.aa.waiting(), 1);
  p.g.bb.hangup();
  await p.run();
  assert.equal(p.g.aa.state, 'idle', 'the call ended with bb');
  assert.equal(p.g.aa.links.size, 0, 'the waiting offer was declined');
  assert.equal(p.g.aa.local, null, 'the camera released');
  assert.equal(p.g.ss.state, 'idle');
  // And a join offer to a page in no call is declined at once.
  p.g.ss.begin(true);
  p.g.ss.link('aa', false);
  await p.run();
  assert.equal(p.g.aa.links.size, 0);
});

test('a newcomer told "no room" before the word naming who said it leaves rather than stay half connected', async () => {
  const p = pages(['aa', 'bb', 'cc', 'dd'], 3);
  await connect(p, 'aa', 'bb');
  p.hold((q) => q.from === 'bb' && q.to === 'dd' && q.m.t === 'roster');
  p.g.aa.place('cc');
  p.g.bb.place('dd');
  await p.run();
  p.g.cc.accept();
  p.g.dd.accept();
  await p.run();
  p.release();
  await p.run();
  const m = mesh(p.g);
  const inCall = Object.keys(m).filter((id) => m[id]);
  for (const id of inCall) assert.equal(m[id], inCall.filter((x) => x !== id).join(','), JSON.stringify(m));
});

test('"no room" from someone already linked with us is not believed', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  await connect(p, 'aa', 'bb');
  await connect(p, 'aa', 'cc'); // cc joins: told of bb, linked with it
  await p.g.cc.receive('bb', { t: 'full', call: '' });
  assert.deepEqual(mesh(p.g), { aa: 'bb,cc', bb: 'aa,cc', cc: 'aa,bb' });
});

test('crossing calls while someone else rings: one link, nobody told busy, the other still rings', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  p.g.cc.place('bb');
  await p.run();
  assert.equal(p.g.bb.request?.peer, 'cc');
  p.g.aa.place('bb');
  p.g.bb.place('aa');
  await p.run();
  assert.equal(p.g.aa.links.get('bb')?.state, 'in call');
  assert.equal(p.g.bb.links.get('aa')?.state, 'in call');
  assert.equal(p.g.bb.request?.peer, 'cc', 'cc still rings');
  assert.ok(!p.sent.bb.some((s) => s.m.t === 'decline' && s.to === 'aa'), 'aa is not told busy');
});

test('a link failing as the third person leaves is made again: the two stay in the call', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  await threeInCall(p);
  /** @type {any} */ (p.g.aa.links.get('bb')).fail();
  p.g.cc.hangup();
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb', bb: 'aa', cc: '' });
});

test('re-adding someone whose link was dropped counts only who they lack', async () => {
  const p = pages(['aa', 'bb', 'cc', 'dd'], 4);
  await threeInCall(p);
  await connect(p, 'aa', 'dd');
  for (let i = 0; i <= RELINKS; i++) {
    /** @type {any} */ (p.g.aa.links.get('dd')).fail();
    await p.run();
  }
  assert.equal(p.g.aa.links.has('dd'), false, 'dropped');
  p.g.aa.place('dd');
  await p.run();
  assert.equal(p.g.dd.request?.peer, 'aa', 'dd is asked, not told the call is full');
  p.g.dd.accept();
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb,cc,dd', bb: 'aa,cc,dd', cc: 'aa,bb,dd', dd: 'aa,bb,cc' });
});

test('a peer named before it was known is linked once it is', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  const known = p.g.bb.o.known;
  p.g.bb.o.known = (x) => x !== 'cc' && known(x); // bb has not heard cc's hello yet
  await threeInCall(p);
  // bb < cc: bb had to offer, and could not.
  assert.equal(p.g.bb.links.has('cc'), false);
  p.g.bb.o.known = known;
  p.g.bb.seen('cc');
  await p.run();
  assert.deepEqual(mesh(p.g), { aa: 'bb,cc', bb: 'aa,cc', cc: 'aa,bb' });
});

test('a roster of made-up names makes a full call send nothing; someone listed is told "no room" once', async () => {
  const p = pages(['aa', 'bb', 'cc', 'dd'], 3);
  await threeInCall(p);
  const before = p.sent.aa.length;
  await p.g.aa.receive('bb', { t: 'roster', call: /** @type {any} */ (p.g.aa.links.get('bb')).id, peers: ['x1', 'x2', 'x3', 'dd'] });
  await p.g.aa.receive('bb', { t: 'roster', call: /** @type {any} */ (p.g.aa.links.get('bb')).id, peers: ['dd'] });
  assert.deepEqual(p.sent.aa.slice(before).map((s) => s.to + ' ' + s.m.t), ['dd full']);
});

test('a member who reloads leaves the call at once; one whose signalling drops stays until its connection decides', async () => {
  const p = pages(['aa', 'bb', 'cc']);
  await threeInCall(p);
  // cc's signalling is gone (a closed laptop lid, a lost network): the media may go on.
  p.g.aa.gone('cc', false);
  assert.equal(p.g.aa.links.get('cc')?.state, 'in call', 'its own recovery deadline decides');
  // bb reloaded (a new page instance): its old links are gone for good.
  p.g.aa.gone('bb', true);
  p.g.cc.gone('bb', true);
  await p.run();
  const m = mesh(p.g);
  assert.deepEqual([m.aa, m.cc], ['cc', 'aa'], 'aa and cc still linked, with nobody else');
  assert.equal(p.g.aa.state, 'in call', 'aa and cc go on');
  assert.deepEqual(p.notices.aa, [], 'a reload is no failure to report');
});

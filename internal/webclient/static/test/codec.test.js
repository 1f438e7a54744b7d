import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBody, decodeBody, bareId, Sealer, safetyCode, toBase64, fromBase64, KEYS_KEPT } from '../codec.js';

test('bodies round-trip any Unicode and never contain a pipe', () => {
  const values = [
    { t: 'offer', call: 'abc' },
    { name: 'Bé 🙂 日本語 \u0000 \ud83d\ude00 |pipes| "quotes" \\ / +' },
    { sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n'.repeat(2000) },
    'ünïcödé', 42, null, [1, 'two', { three: 3 }],
  ];
  for (const v of values) {
    const b = encodeBody(v);
    assert.match(b, /^[A-Za-z0-9+/]*={0,2}$/);
    assert.ok(!b.includes('|'));
    assert.deepEqual(decodeBody(b), v);
  }
});

test('bodies match what FreeSWITCH relayed in the recording', () => {
  assert.deepEqual(decodeBody('eyJ0eXBlIjoib2ZmZXIifQ=='), { type: 'offer' });
  assert.deepEqual(decodeBody('eyJuYW1lIjoiQsOpIiwicHJlc2VuY2UiOiJhdmFpbGFibGUifQ=='), { name: 'Bé', presence: 'available' });
  assert.equal(encodeBody({ presence: 'available' }), 'eyJwcmVzZW5jZSI6ImF2YWlsYWJsZSJ9');
});

test('bad bodies throw', () => {
  for (const b of ['a', 'not base64!', toBase64(new Uint8Array([0xff, 0xfe])), 'eA==', /** @type {any} */ (7)]) {
    assert.throws(() => decodeBody(b), `decodeBody(${b})`);
  }
});

test('base64 of large binary round-trips', () => {
  const bytes = new Uint8Array(200000).map((_, i) => (i * 7) & 255);
  assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
});

test('bareId strips the domain', () => {
  assert.equal(bareId('5c4d3e2f-1a0b-4c9d-8e7f-6a5b4c3d2e1f@channels.test'), '5c4d3e2f-1a0b-4c9d-8e7f-6a5b4c3d2e1f');
  assert.equal(bareId('abc'), 'abc');
  assert.equal(bareId(''), '');
});

test('sealed messages open only for the right peer and direction', async () => {
  const a = await Sealer.create();
  const b = await Sealer.create();
  const c = await Sealer.create();
  const msg = { t: 'sdp', d: { type: 'offer', sdp: 'v=0 ☃' } };
  const env = await a.seal(b.pub, msg, 'A>B');
  assert.ok(!JSON.stringify(env).includes('v=0'));
  assert.deepEqual(await b.open(a.pub, env, 'A>B'), msg);
  await assert.rejects(b.open(a.pub, env, 'B>A'), 'wrong direction');
  await assert.rejects(c.open(a.pub, env, 'A>B'), 'third party');
  const tampered = { ...env, ct: toBase64(fromBase64(env.ct).map((x, i) => (i === 0 ? x ^ 1 : x))) };
  await assert.rejects(b.open(a.pub, tampered, 'A>B'), 'tampered');
  assert.equal(await safetyCode(a.pub, b.pub), await safetyCode(b.pub, a.pub));
  assert.notEqual(await safetyCode(a.pub, b.pub), await safetyCode(a.pub, c.pub));
});

test('keys agreed with peers are bounded: a flood of new keys evicts the least recently used', async () => {
  const me = await Sealer.create();
  const ann = await Sealer.create();
  const bob = await Sealer.create();
  const env = await ann.seal(me.pub, { hi: 'Ann' }, 'A>M');
  assert.deepEqual(await me.open(ann.pub, env, 'A>M'), { hi: 'Ann' });
  await me.seal(bob.pub, 'x', 'M>B');
  // A peer announcing a new (here: not even valid) key every time.
  const flood = [];
  for (let i = 0; i < KEYS_KEPT * 4; i++) {
    const junk = new Uint8Array(65);
    junk[0] = 4;
    new DataView(junk.buffer).setUint32(1, i);
    flood.push(me.open(toBase64(junk), env, 'X>M').then(() => assert.fail('opened with a junk key'), () => {}));
    // Ann keeps talking meanwhile; Bob falls silent.
    if (i % 16 === 0) assert.deepEqual(await me.open(ann.pub, env, 'A>M'), { hi: 'Ann' });
  }
  await Promise.all(flood);
  assert.ok(me.keys.size <= KEYS_KEPT, `${me.keys.size} keys kept`);
  assert.ok(me.keys.has(ann.pub), 'the key in use stays');
  assert.ok(!me.keys.has(bob.pub), 'the silent peer\'s key went');
  // Bob's key is agreed again when needed.
  assert.deepEqual(await bob.open(me.pub, await me.seal(bob.pub, { hi: 'Bob' }, 'M>B'), 'M>B'), { hi: 'Bob' });
});

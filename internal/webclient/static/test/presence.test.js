import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Presence, cleanName, EXPIRE_MS } from '../presence.js';

test('presence bookkeeping', async (t) => {
  let now = 1000;
  const p = new Presence('me', () => now);
  const steps = [
    { name: 'own echo ignored', from: 'me', a: { t: 'available', hello: true }, want: { added: false, answer: false }, peers: [] },
    { name: 'newcomer hello is answered', from: 'b', a: { t: 'available', name: 'Bob', hello: true, inst: '1' }, want: { added: true, answer: true }, peers: ['Bob'] },
    { name: 'heartbeat of known peer not answered', from: 'b', a: { t: 'available', name: 'Bob', inst: '1' }, want: { added: false, changed: false, answer: false }, peers: ['Bob'] },
    { name: 'heartbeat of unknown peer answered', from: 'c', a: { t: 'available', name: 'Cy', inst: '1' }, want: { added: true, answer: true }, peers: ['Bob', 'Cy'] },
    { name: 'rename', from: 'c', a: { t: 'available', name: 'Abe', inst: '1' }, want: { changed: true, answer: false }, peers: ['Abe', 'Bob'] },
    { name: 'reconnect hello answered', from: 'b', a: { t: 'available', name: 'Bob', inst: '1', hello: true }, want: { restarted: false, answer: true }, peers: ['Abe', 'Bob'] },
    { name: 'reload is a restart', from: 'b', a: { t: 'available', name: 'Bob', inst: '2' }, want: { restarted: true, answer: true }, peers: ['Abe', 'Bob'] },
    { name: 'direct answer adds, never answered', from: 'd', a: { t: 'here', name: 'Dee' }, want: { added: true, answer: false }, peers: ['Abe', 'Bob', 'Dee'] },
    { name: 'unavailable removes', from: 'c', a: { t: 'unavailable' }, want: { changed: true }, peers: ['Bob', 'Dee'] },
    { name: 'unknown type ignored', from: 'e', a: { t: 'offer' }, want: { added: false }, peers: ['Bob', 'Dee'] },
    { name: 'garbage ignored', from: 'e', a: /** @type {any} */ ('x'), want: { added: false }, peers: ['Bob', 'Dee'] },
  ];
  for (const s of steps) {
    await t.test(s.name, () => {
      const out = p.take(s.from, s.a);
      for (const [k, v] of Object.entries(s.want)) assert.equal(out[/** @type {keyof typeof out} */ (k)], v, k);
      assert.deepEqual(p.list().map((x) => x.name), s.peers);
    });
  }
  await t.test('silent peers expire', () => {
    now += EXPIRE_MS - 10;
    p.touch('d');
    now += 20;
    assert.deepEqual(p.sweep(), ['b']);
    assert.deepEqual(p.list().map((x) => x.id), ['d']);
  });
});

test('cleanName', () => {
  assert.equal(cleanName('  Zoë \u0007 ', 'abcdef'), 'Zoë');
  assert.equal(cleanName('', 'abcdef'), 'Guest abcd');
  assert.equal(cleanName(null, 'abcdef'), 'Guest abcd');
  assert.equal(cleanName('<b>x</b>', 'a'), '<b>x</b>');
  assert.equal(cleanName('x'.repeat(100), 'a').length, 40);
});

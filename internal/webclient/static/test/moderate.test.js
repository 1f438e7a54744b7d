import { test } from 'node:test';
import assert from 'node:assert/strict';
import { View } from '../view.js';
import { moderate } from '../moderate.js';
import { installDom } from './dom.js';

const nop = () => {};
const ann = { id: 'a', name: 'Ann' }, bob = { id: 'b', name: 'Bob' };

/**
 * A manager's page: the real view on the fake document, the tools added,
 * and a server answering each POST with the next of answers ({status,
 * body}, or an Error for a network failure).
 * @param {any} t @param {...any} answers
 */
function managerPage(t, ...answers) {
  const { doc, root } = installDom(t);
  const act = { call: nop, accept: nop, decline: nop, hangup: nop, mic: nop, camera: nop, share: nop, name: nop, device: nop, reconnect: nop, preview: nop, chat: nop };
  const view = new View(/** @type {any} */ (root), act);
  /** @type {{url: string, method: string, body: string}[]} */
  const posted = [];
  /** @type {any[]} */
  const applied = [];
  /** @type {any[]} */
  const hints = [];
  /** @type {string[]} */
  const logged = [];
  let peers = [ann, bob];
  view.setPeers(peers, true); // rows made before the tools load
  moderate({
    channelId: 'room', view: /** @type {any} */ (view),
    // A function, not an arrow: like the browser's fetch, it refuses to
    // be called as a method of another object ("Illegal invocation").
    fetch: /** @type {any} */ (async function (/** @type {string} */ url, /** @type {any} */ init) {
      // @ts-ignore: this is the point
      if (this !== undefined && this !== globalThis) throw new TypeError('Illegal invocation');
      posted.push({ url, method: init.method, body: String(init.body) });
      const a = answers.shift();
      if (a instanceof Error) throw a;
      return { ok: a.status < 300, status: a.status, json: async () => { if (a.body === undefined) throw new SyntaxError('not JSON'); return a.body; } };
    }),
    // As the controller does: the removed leave the list, the lock shows.
    apply: (s) => {
      applied.push(s);
      peers = peers.filter((p) => !s.removed?.includes(p.id));
      view.setPeers(peers, true);
      view.setLocked(!!s.locked);
    },
    broadcast: async (m) => { hints.push(m); },
    log: { warn: (...a) => { logged.push(a.join(' ')); } },
  });
  const all = () => [...root.all()];
  const row = (/** @type {string} */ id) => all().find((e) => e.tagName === 'LI' && e.getAttribute('data-peer') === id);
  const inRow = (/** @type {string} */ id, /** @type {(e: any) => boolean} */ f) => [...row(id).all()].find(f);
  const remove = (/** @type {string} */ id) => inRow(id, (e) => e.getAttribute('class') === 'remove');
  const form = (/** @type {string} */ id) => inRow(id, (e) => e.tagName === 'FORM');
  const lock = () => all().find((e) => e.getAttribute('class') === 'lock');
  const problem = () => all().find((e) => e.getAttribute('class') === 'problem').textContent;
  return { doc, root, view, posted, applied, hints, logged, row, inRow, remove, form, lock, problem, setPeers: (/** @type {any[]} */ p) => { peers = p; view.setPeers(p, true); } };
}

/** Lets the fake server's answers and what follows them settle. */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((ok) => setTimeout(ok, 1));
};

test('Remove on each row, named for its person, rows made later and renamed too', (t) => {
  const m = managerPage(t);
  for (const [id, name] of [['a', 'Ann'], ['b', 'Bob']]) {
    assert.equal(m.remove(id).textContent, 'Remove');
    assert.equal(m.remove(id).getAttribute('aria-label'), 'Remove ' + name);
    assert.equal(m.remove(id).getAttribute('type'), 'button');
  }
  m.setPeers([ann, { id: 'b', name: 'Bobby' }, { id: 'c', name: 'Cy' }]);
  assert.equal(m.remove('c').getAttribute('aria-label'), 'Remove Cy', 'a row made later');
  assert.equal(m.remove('b').getAttribute('aria-label'), 'Remove Bobby', 'renamed');
  assert.equal(m.row('b').children.filter((/** @type {any} */ e) => e.getAttribute('class') === 'remove').length, 1, 'one button per row');
  assert.equal(m.row('b').children[1].textContent, 'Call', 'the Call button stays where the view keeps it');
});

test('Remove opens a form in the row, its choice focused (1 hour); Cancel or Escape closes it, the focus back on Remove', (t) => {
  const m = managerPage(t);
  m.remove('b').click();
  const f = m.form('b');
  assert.ok(f, 'the form opened');
  assert.equal(f.getAttribute('class'), 'remove-form');
  const sel = m.inRow('b', (e) => e.tagName === 'SELECT');
  assert.equal(sel.getAttribute('name'), 'minutes');
  assert.equal(m.doc.activeElement, sel, 'the choice takes the focus');
  assert.equal(sel.value, '60', '1 hour unless chosen');
  assert.deepEqual(sel.children.map((/** @type {any} */ o) => o.getAttribute('value') + ' ' + o.textContent), ['15 15 minutes', '60 1 hour', '1440 1 day', '10080 1 week']);
  const label = sel.parentNode;
  assert.equal(label.tagName, 'LABEL');
  assert.equal(label.textContent.startsWith('Remove Bob for'), true, 'labelled with whom and what');
  const buttons = [...f.all()].filter((e) => e.tagName === 'BUTTON');
  assert.deepEqual(buttons.map((b) => b.getAttribute('type') + ' ' + b.textContent), ['submit Remove', 'button Cancel']);
  assert.equal(m.remove('b').hidden, true, 'the form stands for the button meanwhile');
  assert.equal(m.form('a'), undefined, 'other rows unchanged');
  buttons[1].click(); // Cancel
  assert.equal(m.form('b'), undefined, 'closed');
  assert.equal(m.remove('b').hidden, false);
  assert.equal(m.doc.activeElement, m.remove('b'), 'the focus back on Remove');
  assert.deepEqual(m.posted, [], 'nothing sent');
  m.remove('b').click();
  m.inRow('b', (e) => e.tagName === 'SELECT').fire('keydown', { key: 'Escape' });
  assert.equal(m.form('b'), undefined, 'Escape closes it too');
  assert.equal(m.doc.activeElement, m.remove('b'));
});

test('the form posts the person and the period; then the change applies here and the others are told', async (t) => {
  const m = managerPage(t, { status: 200, body: { removed: 'b', until: 1700000000 } });
  m.remove('b').click();
  m.inRow('b', (e) => e.tagName === 'SELECT').value = '1440';
  const sent = m.form('b').fire('submit');
  assert.equal(sent.defaultPrevented, true, 'the page stays');
  m.form('b').fire('submit'); // a second press while it goes: nothing more
  await settle();
  assert.deepEqual(m.posted, [{ url: '/c/room/remove', method: 'POST', body: 'client=b&minutes=1440' }]);
  assert.deepEqual(m.applied, [{ removed: ['b'], locked: false }]);
  assert.deepEqual(m.hints, [{ t: 'mod' }]);
  assert.equal(m.row('b'), undefined, 'the row went with the person');
  assert.equal(m.doc.activeElement, m.lock(), 'the focus stays in the people list');
});

test('a refusal is said in words, the form staying open to try again', async (t) => {
  const m = managerPage(t,
    { status: 403, body: { error: 'only the channel’s managers can remove people' } },
    new TypeError('Failed to fetch'),
    { status: 502 });
  m.remove('b').click();
  for (const want of ['Could not remove Bob: only the channel’s managers can remove people', 'Could not remove Bob: Failed to fetch', 'Could not remove Bob: HTTP 502']) {
    m.form('b').fire('submit');
    await settle();
    assert.equal(m.problem(), want);
    assert.ok(m.form('b'), 'still open');
  }
  assert.equal(m.posted.length, 3, 'each try went');
  assert.deepEqual(m.applied, []);
  assert.deepEqual(m.hints, []);
  assert.ok(m.row('b'));
});

test('Lock channel: reads the state, posts it, applies it, tells the others; a refusal is said', async (t) => {
  const m = managerPage(t, { status: 200, body: { locked: true } }, { status: 200, body: { locked: false } }, { status: 403, body: { error: 'not yours' } });
  const b = m.lock();
  assert.equal(b.textContent, 'Lock channel');
  assert.equal(b.getAttribute('type'), 'button');
  assert.equal(b.parentNode.getAttribute('class'), 'people', 'in the people aside');
  b.click();
  b.click(); // pressed twice while the first goes: one request
  await settle();
  assert.deepEqual(m.posted, [{ url: '/c/room/lock', method: 'POST', body: 'locked=1' }]);
  assert.deepEqual(m.applied, [{ locked: true }]);
  assert.deepEqual(m.hints, [{ t: 'mod' }]);
  assert.equal(b.textContent, 'Unlock channel');
  b.click();
  await settle();
  assert.equal(m.posted[1].body, 'locked=0');
  assert.equal(b.textContent, 'Lock channel');
  // Locked by another manager: the page hears it from the moderation state.
  m.view.setLocked(true);
  assert.equal(b.textContent, 'Unlock channel');
  b.click();
  await settle();
  assert.equal(m.posted[2].body, 'locked=0');
  assert.equal(m.problem(), 'Could not unlock the channel: not yours');
  assert.equal(b.textContent, 'Unlock channel', 'unchanged');
  assert.equal(m.hints.length, 2);
});

test('a hint that could not go is logged', async (t) => {
  const { root } = installDom(t);
  const view = new View(/** @type {any} */ (root), /** @type {any} */ ({ chat: nop, reconnect: nop }));
  /** @type {string[]} */
  const logged = [];
  moderate({
    channelId: 'a b', view: /** @type {any} */ (view),
    fetch: /** @type {any} */ (async (/** @type {string} */ url) => ({ ok: true, status: 200, json: async () => ({ locked: url === '/c/a%20b/lock' }) })),
    apply: (s) => view.setLocked(!!s.locked),
    broadcast: () => Promise.reject(new Error('Rate limit exceeded')),
    log: { warn: (...a) => { logged.push(a.join(' ')); } },
  });
  [...root.all()].find((e) => e.getAttribute('class') === 'lock').click();
  await settle();
  assert.equal(view.locked.hidden, false, 'the channel id is escaped in the address');
  assert.deepEqual(logged, ['channels: moderation hint: Error: Rate limit exceeded']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chat } from '../chat.js';
import { toBase64, fromBase64 } from '../codec.js';
import { FakeDocument, FakeElement } from './dom.js';
import { waitFor } from './fakes.js';

// Chat pages wired to each other through fakes: a broadcast fans out to
// the pages that list the sender, a key goes as a direct message (sealed
// pairwise by the controller in the page, a plain call here), and every
// frame that leaves a page is kept on `wire`. Web Crypto is Node's own;
// time is a fake clock that the tests move. The chat section is the one
// the server renders (channel.html), read from the template.

const CH = 'ch1';
const TOO_FAST = 'You are sending messages too fast; wait a moment.';

// The fake DOM finds elements by tag and classes, as the chat asks.
/** @type {any} */ (FakeElement.prototype).querySelector ??= function (/** @type {string} */ sel) {
  return all(this, sel)[0] ?? null;
};

/** Elements under root matching "tag.class.class" (either part optional). @param {any} root @param {string} sel @returns {any[]} */
function all(root, sel) {
  const [tag, ...cls] = sel.split('.');
  return [...root.all()].filter((e) => (!tag || e.tagName === tag.toUpperCase())
    && cls.every((c) => (e.getAttribute('class') || '').split(' ').includes(c)));
}

/** The server-rendered chat section of channel.html, built in doc. @param {FakeDocument} doc */
function renderSection(doc) {
  const tpl = readFileSync(new URL('../../../web/templates/channel.html', import.meta.url), 'utf8');
  const html = tpl.slice(tpl.indexOf('<section class="chat"'), tpl.indexOf('</section>') + 10).replace(/\{\{[^}]*\}\}/g, '');
  const root = doc.createElement('div');
  /** @type {any} */
  let at = root;
  for (const [, close, tag, attrs, text] of html.matchAll(/<(\/?)(\w+)([^>]*)>|([^<]+)/g)) {
    if (text !== undefined) {
      if (text.trim()) at.append(text);
    } else if (close) at = at.parentNode;
    else {
      const e = doc.createElement(tag);
      for (const [, k, v] of attrs.matchAll(/([\w-]+)(?:="([^"]*)")?/g)) {
        if (k === 'hidden') e.hidden = true;
        else e.setAttribute(k, v ?? '');
      }
      if (tag === 'textarea') e.value = '';
      at.append(e);
      at = e;
    }
  }
  const section = root.firstElementChild;
  doc.body.append(section);
  return section;
}

/** Timers that run when the test moves the clock. */
class Clock {
  t = new Date(2025, 0, 2, 9, 5).getTime();
  /** @type {{id: number, at: number, ms: number, f: () => void}[]} */
  timers = [];
  next = 1;
  /** @param {() => void} f @param {number} ms */
  set(f, ms) {
    this.timers.push({ id: this.next, at: this.t + ms, ms, f });
    return this.next++;
  }
  /** @param {any} id */
  clear(id) { this.timers = this.timers.filter((x) => x.id !== id); }
  /** Runs the timers due within ms, in order. @param {number} ms */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.clear(due.id);
      this.t = due.at;
      due.f();
    }
    this.t = end;
  }
}

/** sessionStorage on a Map; fail makes setItem throw (a full store). */
class FakeStorage {
  /** @type {Map<string, string>} */
  map = new Map();
  fail = false;
  /** @param {string} k */
  getItem(k) { return this.map.get(k) ?? null; }
  /** @param {string} k @param {string} v */
  setItem(k, v) {
    if (this.fail) throw new Error('QuotaExceededError (fake)');
    this.map.set(k, v);
  }
}

/** An IntersectionObserver the test drives: report(el, inView) is the browser's word. */
class FakeIO {
  /** @type {FakeIO[]} */
  static made = [];
  /** @param {(es: any[], o: FakeIO) => void} f */
  constructor(f) {
    this.f = f;
    /** @type {Set<any>} */
    this.watched = new Set();
    FakeIO.made.push(this);
  }
  /** @param {any} el */
  observe(el) { this.watched.add(el); }
  /** @param {any} el */
  unobserve(el) { this.watched.delete(el); }
  /** @param {any} el @param {boolean} isIntersecting */
  report(el, isIntersecting) { if (this.watched.has(el)) this.f([{ target: el, isIntersecting }], this); }
}

/**
 * A page's window: its document (hidden, title, visibilitychange), timers
 * on the clock, notifications as allowed, an IntersectionObserver if io.
 * @param {Clock} clock @param {{hidden?: boolean, permission?: string, io?: boolean}} [o]
 */
function fakeWindow(clock, { hidden = false, permission = 'default', io = false } = {}) {
  /** @type {any} */
  const doc = new FakeDocument();
  doc.hidden = hidden;
  doc.title = 'Standup';
  /** @type {Map<string, ((e?: any) => void)[]>} */
  const on = new Map();
  const listen = (/** @type {string} */ t, /** @type {() => void} */ f) => on.set(t, [...(on.get(t) || []), f]);
  doc.addEventListener = listen;
  /** @type {any[]} */
  const notes = [];
  class Notification {
    static permission = permission;
    static requestPermission() { throw new Error('the chat asked for permission'); }
    /** @param {string} title @param {any} opts */
    constructor(title, opts) {
      this.title = title;
      this.opts = opts;
      this.closed = false;
      notes.push(this);
    }
    close() { this.closed = true; }
  }
  return {
    document: doc, notes, Notification,
    IntersectionObserver: io ? FakeIO : undefined,
    setTimeout: (/** @type {() => void} */ f, /** @type {number} */ ms) => clock.set(f, ms),
    clearTimeout: (/** @type {any} */ id) => clock.clear(id),
    addEventListener: listen,
    focus() {},
    /** @param {string} t */
    fire(t) { for (const f of on.get(t) || []) f(); },
    /** The tab is shown (false) or hidden. @param {boolean} h */
    setHidden(h) {
      doc.hidden = h;
      this.fire('visibilitychange');
    },
  };
}

/**
 * @typedef {{id: string, name: string, sealing: boolean, present: Set<string>, banned: Set<string>,
 *   pub: string, win: any, section: any, storage: FakeStorage, chat: import('../chat.js').Chat, warned: any[][],
 *   announced: string[]}} Page
 */

/**
 * Pages on one channel, each listing the others.
 * @param {string[]} ids @param {{noSeal?: string[], win?: any, storage?: FakeStorage, canSeal?: boolean}} [opts]
 */
function network(ids, opts = {}) {
  const clock = new Clock();
  /** @type {{kind: 'dm'|'chat', from: string, to?: string, body: string, m: any}[]} everything that left a page */
  const wire = [];
  /** @type {Map<string, Page>} */
  const pages = new Map();
  let made = 0;
  const net = {
    clock, wire, pages,
    /** @type {((from: string, to: string) => boolean)} a key hand-over the relay refuses */
    refuseKey: (/** @type {string} */ from, /** @type {string} */ to) => false,
    /** @type {((from: string, to: string) => boolean)} a key hand-over lost on the way (taken, never delivered) */
    loseKey: (/** @type {string} */ from, /** @type {string} */ to) => false,
    /** @type {(() => void)[] | null} key deliveries held back, when an array */
    held: /** @type {(() => void)[] | null} */ (null),
    /** @type {any} the hub's refusal of broadcasts, or null */
    refuse: null,
    /** @param {string} id @param {{sealing?: boolean, win?: any, storage?: FakeStorage, canSeal?: boolean}} [o] */
    add(id, o = {}) {
      const win = o.win || fakeWindow(clock);
      /** @type {Page} */
      const page = /** @type {any} */ ({
        id, name: id[0].toUpperCase() + id.slice(1), sealing: o.sealing ?? true, pub: 'pub-' + id + '-' + ++made, // a key pair per page
        present: new Set(), banned: new Set(), win, storage: o.storage || new FakeStorage(), warned: [], announced: [],
      });
      for (const p of pages.values()) {
        p.present.add(id);
        page.present.add(p.id);
      }
      pages.set(id, page);
      page.section = renderSection(win.document);
      page.chat = chat({
        channelId: CH, self: id, section: page.section,
        canSeal: o.canSeal ?? page.sealing, subtle: (o.canSeal ?? page.sealing) ? crypto.subtle : null,
        random: (n) => crypto.getRandomValues(new Uint8Array(n)),
        b64: { to: toBase64, from: fromBase64 },
        peers: () => [...page.present].filter((x) => !page.banned.has(x)).map((x) => {
          const p = /** @type {Page} */ (pages.get(x));
          return { id: x, name: p.name, key: p.sealing ? p.pub : '' };
        }),
        name: (x) => pages.get(x)?.name || 'Someone',
        sendKey: async (to, m) => {
          wire.push({ kind: 'dm', from: id, to, body: JSON.stringify(m), m });
          if (net.refuseKey(id, to)) throw new Error('refused (fake)');
          if (net.loseKey(id, to)) return;
          const deliver = () => pages.get(to)?.chat.key(id, m);
          if (net.held) net.held.push(deliver);
          else queueMicrotask(deliver);
        },
        broadcast: async (m) => {
          wire.push({ kind: 'chat', from: id, body: JSON.stringify(m), m });
          if (net.refuse) throw net.refuse;
          for (const p of pages.values()) if (p.id !== id && p.present.has(id)) queueMicrotask(() => p.chat.take(id, m));
        },
        storage: page.storage, win, now: () => clock.t,
        announce: (t) => page.announced.push(t),
        log: { warn: (...a) => page.warned.push(a) },
      });
      for (const p of pages.values()) if (p !== page) p.chat.peersChanged();
      return page;
    },
  };
  for (const id of ids) net.add(id, { sealing: !opts.noSeal?.includes(id) });
  return net;
}

/** @param {Page} p */
const parts = (p) => {
  const s = p.section;
  return {
    log: all(s, 'ol.messages')[0], note: all(s, 'p.chat-note')[0], problem: all(s, 'p.chat-problem')[0],
    unread: all(s, 'button.unread')[0], form: all(s, 'form.send')[0], field: all(s, 'textarea')[0],
    send: all(all(s, 'form.send')[0], 'button')[0],
  };
};
/** Fires an event at el's listeners; returns whether its default was prevented. @param {any} el @param {string} type @param {any} [props] */
const emit = (el, type, props = {}) => {
  let prevented = false;
  const e = { type, target: el, preventDefault() { prevented = true; }, ...props };
  for (const f of el.listeners.get(type) || []) f(e);
  return prevented;
};
/** Types text and presses Send. @param {Page} p @param {string} text */
const say = (p, text) => {
  const { field, form } = parts(p);
  field.value = text;
  emit(form, 'submit');
};
/** The messages a page shows: [from, who, text] of each li.msg. @param {Page} p */
const shown = (p) => all(parts(p).log, 'li.msg').map((li) => [li.dataset.from, all(li, 'span.who')[0]?.textContent, all(li, 'p.text')[0].textContent]);
/** The texts from one sender. @param {Page} p @param {string} from */
const textsFrom = (p, from) => shown(p).filter(([f]) => f === from).map(([, , t]) => t);
/** The page's own words in the log (li.notice). @param {Page} p */
const notices = (p) => all(parts(p).log, 'li.notice').map((li) => all(li, 'p.text')[0].textContent);
/** Lets promise chains (and Web Crypto) run for a moment, to show something did not happen. */
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((ok) => setImmediate(ok));
};

/** A modified client's own chat key and frames, made by hand. */
async function forger() {
  const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
  const raw = toBase64(new Uint8Array(await crypto.subtle.exportKey('raw', key)));
  return {
    raw,
    /** @param {string} sender @param {string} k @param {any} x @param {any} n */
    async frame(sender, k, x, n) {
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const c = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(CH + '>' + sender + '>' + k) },
        key, new TextEncoder().encode(JSON.stringify({ x, n })));
      return { t: 'chat', k, iv: toBase64(iv), c: toBase64(new Uint8Array(c)) };
    },
  };
}

test('a message reaches everyone present as text, sealed: no frame carries it, each key goes once', async () => {
  const net = network(['ann', 'bob', 'cat']);
  const [ann, bob, cat] = ['ann', 'bob', 'cat'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  const text = 'Grüße 👋🏽 <b>x</b> & <img src=x onerror=alert(1)>\nsee https://example.org/a?b=1.';
  say(ann, text);
  // Shown at once on the sender's page, the field emptied.
  assert.deepEqual(shown(ann), [['ann', 'You', text]]);
  assert.equal(parts(ann).field.value, '');
  assert.equal(all(parts(ann).log, 'li.msg')[0].getAttribute('class'), 'msg own');
  await waitFor(() => shown(bob).length && shown(cat).length);
  for (const p of [bob, cat]) {
    assert.deepEqual(shown(p), [['ann', 'Ann', text]]);
    const li = all(parts(p).log, 'li.msg')[0];
    // Markup stays text: the only element made from the text is the link.
    assert.deepEqual(all(li, 'p.text')[0].children.map((/** @type {any} */ e) => e.tagName), ['A']);
    const a = all(li, 'a')[0];
    assert.equal(a.href, 'https://example.org/a?b=1');
    assert.equal(a.textContent, 'https://example.org/a?b=1', 'the full stop after it is not part of the link');
    assert.equal(a.target, '_blank');
    assert.equal(a.rel, 'noopener noreferrer');
    const time = all(li, 'time')[0];
    assert.equal(time.getAttribute('datetime'), new Date(net.clock.t).toISOString());
    assert.equal(time.textContent, '09:05');
  }
  // The wire: one broadcast of ciphertext; the key to each once, the text nowhere.
  say(ann, 'second');
  await waitFor(() => shown(bob).length === 2 && shown(cat).length === 2);
  const utf8 = new TextEncoder().encode('Grüße');
  for (const f of net.wire) {
    assert.ok(!f.body.includes('Grüße') && !f.body.includes('<b>x</b>') && !f.body.includes('second'), f.body);
    if (f.kind === 'chat') assert.ok(!Buffer.from(fromBase64(f.m.c)).includes(utf8));
  }
  assert.deepEqual(net.wire.map((f) => f.kind + ' ' + (f.to || '')), ['dm bob', 'dm cat', 'chat ', 'chat ']);
  assert.equal(net.wire[0].m.key.length, 44, 'a 256-bit key');
  assert.equal(net.wire[0].m.k, net.wire[2].m.k);
});

test('only http(s) addresses become links; everything else stays text', async () => {
  const net = network(['ann', 'bob']);
  const bob = /** @type {Page} */ (net.pages.get('bob'));
  say(/** @type {Page} */ (net.pages.get('ann')), 'javascript:alert(1) ftp://x.org data:text/html,hi HTTPS://A.example/(b) (see http://c.example/d) xhttps://e.example');
  await waitFor(() => shown(bob).length);
  const links = all(parts(bob).log, 'a').map((a) => [a.href, a.textContent]);
  assert.deepEqual(links, [['https://a.example/(b)', 'HTTPS://A.example/(b)'], ['http://c.example/d', 'http://c.example/d']]);
});

test('a link ends at a bidirectional control or U+FEFF, and is isolated (dir=ltr) from the text around it', async () => {
  const net = network(['ann', 'bob']);
  const bob = /** @type {Page} */ (net.pages.get('bob'));
  const text = '\u05e9\u05dc\u05d5\u05dd https://a.example/x\u061cgro.live https://b.example/y\ufeffz https://c.example/w\u202eevil';
  say(/** @type {Page} */ (net.pages.get('ann')), text);
  await waitFor(() => shown(bob).length);
  const links = all(parts(bob).log, 'a');
  assert.deepEqual(links.map((a) => a.textContent), ['https://a.example/x', 'https://b.example/y', 'https://c.example/w']);
  assert.deepEqual(links.map((a) => a.dir), ['ltr', 'ltr', 'ltr']);
  assert.equal(all(parts(bob).log, 'p.text')[0].textContent, text, 'the text stays as sent');
});

test('a message before its key waits for it; one whose key never comes could not be opened after 10 s', async () => {
  const net = network(['ann', 'bob']);
  const [ann, bob] = ['ann', 'bob'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  net.held = [];
  say(ann, 'early');
  await waitFor(() => net.clock.timers.some((t) => t.ms === 10000)); // waiting on bob's page
  assert.deepEqual(shown(bob), []);
  net.clock.advance(9000);
  for (const f of net.held) f();
  net.held = null;
  await waitFor(() => shown(bob).length);
  assert.deepEqual(textsFrom(bob, 'ann'), ['early']);
  net.clock.advance(5000);
  assert.deepEqual(notices(bob), [], 'its timer went with it');

  net.loseKey = () => true;
  ann.chat.removed('nobody'); // a new key, which is lost on the way
  say(ann, 'lost');
  await waitFor(() => net.clock.timers.some((t) => t.ms === 10000));
  net.clock.advance(9999);
  assert.deepEqual(notices(bob), []);
  net.clock.advance(1);
  assert.deepEqual(notices(bob), ['A message from Ann could not be opened.']);
  assert.deepEqual(textsFrom(bob, 'ann'), ['early']);
});

test('at most 8 messages of a sender wait for a key; more could not be opened at once', async () => {
  const net = network(['ann', 'bob']);
  const bob = /** @type {Page} */ (net.pages.get('bob'));
  const f = await forger();
  for (let n = 1; n <= 9; n++) bob.chat.take('ann', await f.frame('ann', 'k1', 'm' + n, n));
  await waitFor(() => notices(bob).length === 1);
  assert.equal(net.clock.timers.filter((t) => t.ms === 10000).length, 8);
  bob.chat.key('ann', { t: 'ck', k: 'k1', key: f.raw });
  await waitFor(() => shown(bob).length === 8);
  assert.deepEqual(textsFrom(bob, 'ann'), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8']);
});

test('a duplicate or replayed frame is dropped', async () => {
  const net = network(['ann', 'bob']);
  const [ann, bob] = ['ann', 'bob'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  say(ann, 'once');
  await waitFor(() => shown(bob).length === 1);
  const first = net.wire.find((f) => f.kind === 'chat')?.m;
  bob.chat.take('ann', first); // again, as the server could
  net.clock.advance(2000);
  say(ann, 'twice');
  await waitFor(() => shown(bob).length === 2);
  bob.chat.take('ann', first); // older than the last one
  bob.chat.take('ann', net.wire.filter((f) => f.kind === 'chat')[1].m);
  await settle();
  assert.deepEqual(textsFrom(bob, 'ann'), ['once', 'twice']);
  assert.deepEqual(notices(bob), []);
});

test('a ciphertext that another member replays as its own is not opened', async () => {
  const net = network(['ann', 'bob', 'mal']);
  const [ann, bob] = ['ann', 'bob'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  say(ann, 'for bob and mal');
  await waitFor(() => shown(bob).length === 1);
  // Mal was given Ann's key (a member), and hands it to Bob as its own, with Ann's frame.
  const key = /** @type {any} */ (net.wire.find((f) => f.kind === 'dm' && f.to === 'mal')).m;
  const frame = /** @type {any} */ (net.wire.find((f) => f.kind === 'chat')).m;
  bob.chat.key('mal', key);
  bob.chat.take('mal', frame);
  await waitFor(() => notices(bob).length);
  assert.deepEqual(notices(bob), ['A message from Mal could not be opened.']);
  assert.deepEqual(shown(bob), [['ann', 'Ann', 'for bob and mal']]);
});

test('after removed() the key changes: the removed person gets no new key and cannot open what follows', async () => {
  const net = network(['ann', 'bob', 'cat']);
  const [ann, bob, cat] = ['ann', 'bob', 'cat'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  say(ann, 'before');
  await waitFor(() => shown(bob).length === 1 && shown(cat).length === 1);
  ann.banned.add('cat');
  ann.chat.removed('cat');
  net.clock.advance(2000);
  say(ann, 'after');
  // Cat's page still gets the frame (a modified page, a relay not yet told).
  await waitFor(() => shown(bob).length === 2);
  const keys = net.wire.filter((f) => f.kind === 'dm').map((f) => f.to + ' ' + f.m.k);
  const frames = net.wire.filter((f) => f.kind === 'chat').map((f) => f.m.k);
  assert.equal(keys.length, 3);
  assert.deepEqual(keys.slice(0, 2).map((k) => k.split(' ')[1]), [frames[0], frames[0]]);
  assert.equal(keys[2], 'bob ' + frames[1]);
  assert.notEqual(frames[0], frames[1]);
  await waitFor(() => net.clock.timers.some((t) => t.ms === 10000));
  net.clock.advance(10000);
  assert.deepEqual(textsFrom(cat, 'ann'), ['before']);
  assert.deepEqual(notices(cat), ['A message from Ann could not be opened.']);
  // Messages of the removed person still waiting for their key on Ann's page are dropped.
  const f = await forger();
  ann.chat.take('bob', await f.frame('bob', 'kb', 'waits', 1));
  await waitFor(() => net.clock.timers.some((t) => t.ms === 10000 && t.at > net.clock.t));
  ann.chat.removed('bob');
  net.clock.advance(20000);
  assert.deepEqual(notices(ann), []);
});

test("the sender's budget: 10 at once, then one a second; over it the text stays and the page says so", async () => {
  const net = network(['ann', 'bob']);
  const [ann, bob] = ['ann', 'bob'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  for (let i = 1; i <= 11; i++) say(ann, 'm' + i);
  assert.equal(shown(ann).length, 10);
  assert.equal(parts(ann).problem.textContent, TOO_FAST);
  assert.equal(parts(ann).field.value, 'm11');
  say(ann, 'm11');
  assert.deepEqual(ann.announced, [TOO_FAST], 'said again through the live region');
  await waitFor(() => shown(bob).length === 10);
  net.clock.advance(1000);
  say(ann, 'm11');
  assert.equal(parts(ann).problem.textContent, '');
  assert.equal(parts(ann).field.value, '');
  await waitFor(() => shown(bob).length === 11);
  assert.deepEqual(textsFrom(bob, 'ann'), Array.from({ length: 11 }, (_, i) => 'm' + (i + 1)));
  assert.deepEqual(notices(bob), []);
});

test('the hub refusing a broadcast (-32010) takes the message back into the field', async () => {
  const net = network(['ann', 'bob']);
  const ann = /** @type {Page} */ (net.pages.get('ann'));
  net.refuse = { code: -32010, message: 'rate limited' };
  say(ann, 'one');
  say(ann, 'two');
  assert.equal(shown(ann).length, 2, 'shown at once');
  parts(ann).field.value = 'typing';
  await waitFor(() => shown(ann).length === 0);
  assert.equal(parts(ann).field.value, 'one\ntwo\ntyping');
  assert.equal(parts(ann).problem.textContent, TOO_FAST);
  net.refuse = new Error('offline');
  parts(ann).field.value = 'three';
  net.clock.advance(5000);
  emit(parts(ann).form, 'submit');
  await waitFor(() => shown(ann).length === 0 && parts(ann).field.value === 'three');
  assert.equal(parts(ann).problem.textContent, 'The message could not be sent; try again.');
});

test('receivers show a sender 10 at once, then one a second, and say once per burst what they hid', async () => {
  const net = network(['bob', 'mal']);
  const bob = /** @type {Page} */ (net.pages.get('bob'));
  const f = await forger();
  bob.chat.key('mal', { t: 'ck', k: 'k1', key: f.raw });
  let n = 0;
  const flood = async (/** @type {number} */ count) => {
    for (let i = 0; i < count; i++) bob.chat.take('mal', await f.frame('mal', 'k1', 'x' + ++n, n));
  };
  await flood(15);
  await waitFor(() => shown(bob).length === 10);
  assert.deepEqual(notices(bob), ['Some messages from Mal were hidden: sent too fast.']);
  net.clock.advance(1000);
  await flood(3);
  await waitFor(() => shown(bob).length === 11);
  await settle();
  assert.equal(shown(bob).length, 11);
  assert.equal(notices(bob).length, 1, 'said once in the burst');
  net.clock.advance(15000); // quiet: the next flood is a new burst
  await flood(12);
  await waitFor(() => shown(bob).length === 21 && notices(bob).length === 2);
});

test('2,000 code points: astral characters count once; more is refused at the sender and not shown by receivers', async () => {
  const net = network(['ann', 'bob']);
  const [ann, bob] = ['ann', 'bob'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  const long = '😀'.repeat(2000); // 4,000 UTF-16 units
  say(ann, long + '😀');
  assert.equal(parts(ann).problem.textContent, 'Messages are at most 2,000 characters');
  assert.equal(parts(ann).field.value, long + '😀');
  assert.equal(shown(ann).length, 0);
  say(ann, long);
  await waitFor(() => shown(bob).length === 1);
  assert.deepEqual(textsFrom(bob, 'ann'), [long]);
  const f = await forger();
  bob.chat.key('mal', { t: 'ck', k: 'k1', key: f.raw });
  bob.chat.take('mal', await f.frame('mal', 'k1', 'a'.repeat(2001), 1));
  await waitFor(() => shown(bob).length === 2);
  assert.deepEqual(textsFrom(bob, 'mal'), ['(a message too long to show)']);
});

test('Enter sends, Shift+Enter makes a new line, and so does Enter while composing', async () => {
  const net = network(['ann', 'bob']);
  const ann = /** @type {Page} */ (net.pages.get('ann'));
  const { field } = parts(ann);
  field.value = 'line';
  assert.equal(emit(field, 'keydown', { key: 'Enter', shiftKey: true }), false);
  assert.equal(emit(field, 'keydown', { key: 'Enter', isComposing: true }), false);
  assert.equal(emit(field, 'keydown', { key: 'a' }), false);
  assert.equal(shown(ann).length, 0);
  field.value = 'line\nnext';
  assert.equal(emit(field, 'keydown', { key: 'Enter' }), true);
  assert.deepEqual(textsFrom(ann, 'ann'), ['line\nnext']);
});

test('unread: counted while the newest message is out of view, until the button shows it', async () => {
  FakeIO.made = [];
  const net = network(['ann']);
  const bob = net.add('bob', { win: fakeWindow(net.clock, { io: true }) });
  const ann = /** @type {Page} */ (net.pages.get('ann'));
  const io = FakeIO.made[0];
  const { unread, form } = parts(bob);
  const rowsWatched = () => [...io.watched].filter((el) => el !== form).length;
  // The form out of view: the button floats (data-away), never over the form.
  io.report(form, false);
  assert.equal(bob.section.hasAttribute('data-away'), true);
  io.report(form, true);
  assert.equal(bob.section.hasAttribute('data-away'), false);
  say(ann, 'in view');
  await waitFor(() => shown(bob).length === 1);
  assert.equal(unread.hidden, true, 'not counted before the browser says where it is');
  io.report(all(parts(bob).log, 'li.msg')[0], true);
  assert.equal(unread.hidden, true);
  assert.equal(rowsWatched(), 0, 'seen: no longer watched');
  net.clock.advance(1000);
  say(ann, 'scrolled away');
  net.clock.advance(1000);
  say(ann, 'again');
  await waitFor(() => shown(bob).length === 3);
  const [, second, third] = all(parts(bob).log, 'li.msg');
  io.report(second, false);
  assert.equal(unread.hidden, false);
  assert.equal(unread.textContent, '1 unread');
  io.report(third, false);
  assert.equal(unread.textContent, '2 unread');
  unread.click();
  assert.equal(unread.hidden, true);
  assert.equal(rowsWatched(), 0);
  assert.equal(bob.win.document.title, 'Standup', 'a visible tab keeps its title');
  // Own messages are never unread.
  say(bob, 'mine');
  assert.equal(rowsWatched(), 0);
});

test('a hidden tab: the title counts, one notification only if already allowed and never the text', async () => {
  const net = network(['ann']);
  const bob = net.add('bob', { win: fakeWindow(net.clock, { hidden: true, permission: 'granted' }) });
  const carl = net.add('carl', { win: fakeWindow(net.clock, { hidden: true }) });
  const ann = /** @type {Page} */ (net.pages.get('ann'));
  say(ann, 'secret words');
  net.clock.advance(1000);
  say(ann, 'more');
  await waitFor(() => shown(bob).length === 2 && shown(carl).length === 2);
  assert.equal(bob.win.document.title, '(2) Standup');
  assert.equal(parts(bob).unread.textContent, '2 unread');
  assert.deepEqual(bob.win.notes.map((/** @type {any} */ n) => [n.title, n.opts]), [['New message from Ann', { tag: 'channels-chat' }]]);
  assert.deepEqual(carl.win.notes, [], 'not allowed: no notification, and no asking');
  assert.equal(carl.win.document.title, '(2) Standup');
  bob.win.setHidden(false);
  assert.equal(bob.win.document.title, 'Standup');
  assert.equal(bob.win.notes[0].closed, true);
  assert.equal(parts(bob).unread.hidden, true, 'no IntersectionObserver: the log counts as in view');
  bob.win.setHidden(true);
  net.clock.advance(1000);
  say(ann, 'later');
  await waitFor(() => shown(bob).length === 3);
  assert.equal(bob.win.document.title, '(1) Standup');
  assert.equal(bob.win.notes.length, 2, 'one more for the next time the tab is hidden');
});

test('a reload shows what the tab showed, marked as earlier; storing that may fail', async () => {
  const net = network(['ann']);
  const storage = new FakeStorage();
  const bob = net.add('bob', { storage });
  const ann = /** @type {Page} */ (net.pages.get('ann'));
  say(ann, 'hello https://example.org');
  await waitFor(() => shown(bob).length === 1);
  say(bob, 'hi');
  await waitFor(() => net.wire.filter((f) => f.kind === 'chat').length === 2);
  await settle();
  bob.win.fire('pagehide'); // a reload before the write was due
  const kept = JSON.parse(storage.getItem('channels.chat.' + CH) || '[]');
  assert.deepEqual(kept.map((/** @type {any} */ m) => [m.from, m.name, m.text, m.own]), [['ann', 'Ann', 'hello https://example.org', false], ['bob', 'You', 'hi', true]]);
  assert.equal(storage.map.size, 1, 'nothing else stored');

  net.pages.delete('bob');
  const again = net.add('bob', { storage });
  const rows = all(parts(again).log, 'li.msg');
  assert.deepEqual(rows.map((li) => li.getAttribute('class')), ['msg earlier', 'msg own earlier']);
  assert.deepEqual(shown(again), [['ann', 'Ann', 'hello https://example.org'], ['bob', 'You', 'hi']]);
  assert.equal(all(rows[0], 'a').length, 1, 'links again');
  assert.equal(parts(again).unread.hidden, true);

  // Only the last 100 are kept, and no more than about 200,000 characters.
  storage.setItem('channels.chat.' + CH, JSON.stringify(Array.from({ length: 150 }, (_, i) => ({ from: 'ann', name: 'Ann', at: 0, text: 'x'.repeat(3000) + i, own: false }))));
  net.pages.delete('bob');
  const third = net.add('bob', { storage });
  assert.equal(shown(third).length, 100);
  assert.equal(shown(third)[0][2], 'x'.repeat(3000) + 50);
  say(ann, 'new');
  await waitFor(() => shown(third).length === 101);
  net.clock.advance(500);
  const s = storage.getItem('channels.chat.' + CH) || '';
  assert.ok(s.length <= 200000, String(s.length));
  assert.equal(JSON.parse(s).at(-1).text, 'new');

  storage.fail = true;
  say(ann, 'not stored');
  await waitFor(() => shown(third).length === 102);
  net.clock.advance(500);
  assert.ok(third.warned.some((w) => String(w[0]).includes('not kept')));
});

test('stop(): the form is disabled, the reason shown, and nothing more is taken', async () => {
  const net = network(['ann', 'bob']);
  const [ann, bob] = ['ann', 'bob'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  bob.chat.stop('You were removed from this channel');
  const { field, send, problem } = parts(bob);
  assert.equal(field.disabled, true);
  assert.equal(send.disabled, true);
  assert.equal(problem.textContent, 'You were removed from this channel');
  say(bob, 'still here?');
  say(ann, 'bye');
  await waitFor(() => net.wire.some((f) => f.kind === 'chat'));
  await settle();
  assert.deepEqual(shown(bob), []);
  assert.equal(net.wire.filter((f) => f.from === 'bob').length, 0);
});

test('without Web Crypto the form says the page needs https', () => {
  const net = network([]);
  const page = net.add('ann', { canSeal: false });
  const { field, send, problem } = parts(page);
  assert.equal(field.disabled && send.disabled, true);
  assert.equal(problem.textContent, 'Chat needs this page over https');
  assert.equal(page.section.dataset.ready, '', 'the form is taken over');
  page.chat.take('bob', { t: 'chat', k: 'k', iv: 'AAAAAAAAAAAAAAAA', c: 'AAAAAAAAAAAAAAAAAAAAAAAA' });
});

test('the note says who cannot receive messages, and they are sent nothing', async () => {
  const net = network(['ann', 'bob', 'dan'], { noSeal: ['dan'] });
  const [ann, bob] = ['ann', 'bob'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  const { note } = parts(ann);
  assert.match(note.textContent, /^Sealed end to end, but Dan cannot receive messages: their browser cannot seal them, so they are sent nothing\. People who join later don't see earlier messages/);
  say(ann, 'hi');
  await waitFor(() => shown(bob).length === 1);
  assert.deepEqual(net.wire.filter((f) => f.kind === 'dm').map((f) => f.to), ['bob']);
  ann.present.delete('dan');
  ann.chat.peersChanged();
  assert.match(note.textContent, /^Sealed end to end with everyone here: the server relays only ciphertext\. People who join later/);
});

test('a refused key hand-over is not taken as given: tried again after a moment and at the next send', async () => {
  const net = network(['ann', 'bob']);
  const [ann, bob] = ['ann', 'bob'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  const dms = () => net.wire.filter((f) => f.kind === 'dm' && f.m.t === 'ck').length;
  let refusals = 2;
  net.refuseKey = (from) => from === 'ann' && refusals-- > 0;
  say(ann, 'first');
  await waitFor(() => net.clock.timers.some((t) => t.ms === 2000) && net.clock.timers.some((t) => t.ms === 10000));
  // Bob asks for the key after 1 s; the hand-over tried again at 2 s is
  // the answer too (one at a time), and is refused again: then 4 s later.
  net.clock.advance(2000);
  await waitFor(() => net.clock.timers.some((t) => t.ms === 4000));
  assert.deepEqual(shown(bob), []);
  assert.equal(dms(), 2);
  net.clock.advance(4000);
  await waitFor(() => shown(bob).length === 1);
  assert.deepEqual(textsFrom(bob, 'ann'), ['first']);
  say(ann, 'second');
  await waitFor(() => shown(bob).length === 2);
  assert.equal(dms(), 3, 'given once it went');

  // The next send tries again at once, before the pause is over.
  const carl = net.add('carl');
  refusals = 1;
  say(ann, 'third');
  await waitFor(() => net.clock.timers.some((t) => t.ms === 2000));
  assert.deepEqual(shown(carl), []);
  net.clock.advance(900); // before carl asks for it
  say(ann, 'fourth');
  await waitFor(() => shown(carl).length === 2);
  assert.deepEqual(textsFrom(carl, 'ann'), ['third', 'fourth']);
  net.clock.advance(5000);
  await settle();
  assert.equal(dms(), 5, 'the retry found it given');
  assert.deepEqual(net.wire.filter((f) => f.m.t === 'ckq').map((f) => f.from + '>' + f.to), ['bob>ann'], 'carl had it before he asked');
});

test('malformed frames and keys from a modified page are dropped, never thrown', async () => {
  const net = network(['bob', 'mal']);
  const bob = /** @type {Page} */ (net.pages.get('bob'));
  const f = await forger();
  const good = await f.frame('mal', 'k1', 'fine', 1);
  const frames = [null, 1, 'x', {}, { ...good, k: 'x'.repeat(17) }, { ...good, k: 5 }, { ...good, iv: 'AAAA' }, { ...good, iv: '!!' },
    { ...good, c: 'A'.repeat(21852) }, { ...good, c: 'AAAA' }, { ...good, c: 7 }];
  const keys = [null, {}, { k: 'k1', key: 'AAAA' }, { k: 'k1', key: 5 }, { k: '', key: f.raw }, { k: 'k1', key: '%%%' }, { k: 'k1', key: f.raw + f.raw }];
  for (const k of keys) bob.chat.key('mal', k);
  for (const m of frames) bob.chat.take('mal', m);
  bob.chat.take('', good);
  bob.chat.take('bob', good);
  await settle();
  assert.equal(net.clock.timers.filter((t) => t.ms === 10000).length, 0, 'nothing waits for a key');
  assert.deepEqual(notices(bob), []);
  // Good ones still work afterwards; bad contents under a good key are not shown.
  bob.chat.key('mal', { t: 'ck', k: 'k1', key: f.raw });
  for (const [x, n] of [[5, 1], ['', 2], ['ok', 'three'], ['ok', 1.5]]) bob.chat.take('mal', await f.frame('mal', 'k1', x, n));
  bob.chat.take('mal', good);
  await waitFor(() => shown(bob).length === 1);
  await settle();
  assert.deepEqual(shown(bob), [['mal', 'Mal', 'fine']]);
});

test('someone who left: their waiting messages could not be opened; their keys stay, so what they send when back opens', async () => {
  const net = network(['ann', 'bob']);
  const [ann, bob] = ['ann', 'bob'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  const keys = () => net.wire.filter((x) => x.kind === 'dm' && x.m.t === 'ck').length;
  say(ann, 'known');
  await waitFor(() => shown(bob).length === 1);
  const f = await forger();
  bob.chat.take('ann', await f.frame('ann', 'never', 'waits', 1));
  await waitFor(() => net.clock.timers.some((t) => t.ms === 10000));
  // Ann's socket dropped for longer than the hub's grace: Bob's page saw
  // her leave; hers still lists Bob (she is back before it notices).
  bob.chat.gone('ann');
  await waitFor(() => notices(bob).length === 1);
  assert.deepEqual(notices(bob), ['A message from Ann could not be opened.']);
  assert.ok(!net.clock.timers.some((t) => t.ms === 10000 || t.ms === 1000), 'its timers went, the ask for its key too');
  net.clock.advance(2000);
  say(ann, 'back');
  await waitFor(() => shown(bob).length === 2);
  assert.deepEqual(textsFrom(bob, 'ann'), ['known', 'back']);
  assert.equal(keys(), 1, 'opened with the key Bob kept: not handed again');
  // What she sent before is still a duplicate.
  bob.chat.take('ann', /** @type {any} */ (net.wire.find((x) => x.kind === 'chat')).m);
  net.clock.advance(20000);
  await settle();
  assert.deepEqual(textsFrom(bob, 'ann'), ['known', 'back']);
  assert.equal(notices(bob).length, 1);
  assert.ok(!net.wire.some((x) => x.m.t === 'ckq'), 'nothing to ask for');
});

test('removed() forgets the sender\'s keys; of senders who left, the last 256 heard from keep theirs', async () => {
  const net = network(['bob']);
  const bob = /** @type {Page} */ (net.pages.get('bob'));
  const f = await forger();
  bob.chat.key('mal', { t: 'ck', k: 'k1', key: f.raw });
  bob.chat.removed('mal');
  for (let i = 0; i <= 256; i++) bob.chat.key('p' + i, { t: 'ck', k: 'k1', key: f.raw });
  for (let i = 0; i <= 256; i++) bob.chat.gone('p' + i);
  for (const id of ['p1', 'p256', 'p0', 'mal']) bob.chat.take(id, await f.frame(id, 'k1', 'from ' + id, 1));
  await waitFor(() => shown(bob).length === 2);
  await settle();
  assert.deepEqual(shown(bob).map(([from]) => from), ['p1', 'p256'], 'p0 was the least recently heard from of 257');
  assert.equal(net.clock.timers.filter((t) => t.ms === 10000).length, 2, 'the others wait for a key');
});

test('fresh(): the key is handed again to that peer (or, without one, to everyone) before the next message', async () => {
  const net = network(['ann', 'bob', 'cat']);
  const [ann, bob, cat] = ['ann', 'bob', 'cat'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  const keys = () => net.wire.filter((x) => x.kind === 'dm' && x.m.t === 'ck').map((x) => x.to);
  // The relay took Ann's key to Bob, but Bob's page dropped it (it did not list her yet).
  net.loseKey = (from, to) => to === 'bob';
  say(ann, 'one');
  await waitFor(() => shown(cat).length === 1 && net.clock.timers.some((t) => t.ms === 10000));
  net.loseKey = () => false;
  say(ann, 'two');
  await waitFor(() => shown(cat).length === 2);
  assert.deepEqual(keys(), ['bob', 'cat'], 'Bob is taken to have it');
  ann.chat.fresh('bob'); // Bob answered her hello: he lists her now
  say(ann, 'three');
  await waitFor(() => shown(bob).length === 3);
  assert.deepEqual(textsFrom(bob, 'ann'), ['one', 'two', 'three']);
  assert.deepEqual(keys(), ['bob', 'cat', 'bob']);
  ann.chat.fresh(); // her own reconnect
  say(ann, 'four');
  await waitFor(() => shown(bob).length === 4 && shown(cat).length === 4);
  assert.deepEqual(keys(), ['bob', 'cat', 'bob', 'bob', 'cat']);
  // A peer listed anew, even without gone(), is handed it again too.
  ann.present.delete('cat');
  ann.chat.peersChanged();
  ann.present.add('cat');
  ann.chat.peersChanged();
  say(ann, 'five');
  await waitFor(() => shown(cat).length === 5);
  assert.deepEqual(keys(), ['bob', 'cat', 'bob', 'bob', 'cat', 'cat']);
  assert.deepEqual(notices(bob), []);
});

test('a message waiting 1 s for its key asks the sender (ckq), once per 10 s; the sender answers once per 5 s', async () => {
  const net = network(['ann', 'bob']);
  const [ann, bob] = ['ann', 'bob'].map((id) => /** @type {Page} */ (net.pages.get(id)));
  const keys = () => net.wire.filter((x) => x.kind === 'dm' && x.m.t === 'ck').length;
  const asks = () => net.wire.filter((x) => x.m.t === 'ckq').map((x) => x.from + '>' + x.to);
  let lose = 1;
  net.loseKey = (from) => from === 'ann' && lose-- > 0;
  say(ann, 'hi');
  await waitFor(() => net.clock.timers.some((t) => t.ms === 10000));
  net.clock.advance(999);
  assert.deepEqual(asks(), []);
  net.clock.advance(1);
  assert.deepEqual(asks(), ['bob>ann']);
  assert.deepEqual(net.wire.at(-1)?.m, { t: 'ckq' });
  await waitFor(() => shown(bob).length === 1);
  assert.deepEqual(textsFrom(bob, 'ann'), ['hi']);
  assert.equal(keys(), 2, 'her key again, in answer');
  const asked = net.clock.t;

  // Lost again (a new key): Bob asks again only 10 s after he last asked.
  lose = 1;
  net.clock.advance(1000);
  ann.chat.removed('nobody');
  say(ann, 'again');
  await waitFor(() => net.clock.timers.some((t) => t.ms === 9000));
  net.clock.advance(asked + 9999 - net.clock.t);
  assert.deepEqual(asks(), ['bob>ann']);
  net.clock.advance(1);
  assert.deepEqual(asks(), ['bob>ann', 'bob>ann']);
  await waitFor(() => shown(bob).length === 2);
  assert.deepEqual(notices(bob), []);

  // The sender answers a peer once per 5 s, only a listed peer with a key, never itself.
  const before = keys();
  ann.chat.key('bob', { t: 'ckq' });
  await settle();
  assert.equal(keys(), before, 'answered less than 5 s ago');
  net.clock.advance(5000);
  ann.chat.key('bob', { t: 'ckq' });
  ann.chat.key('bob', { t: 'ckq' });
  ann.chat.key('zed', { t: 'ckq' });
  ann.chat.key('ann', { t: 'ckq' });
  await settle();
  assert.equal(keys(), before + 1);
  const dan = net.add('dan', { sealing: false });
  ann.chat.key('dan', { t: 'ckq' });
  await settle();
  assert.equal(keys(), before + 1, 'nothing to one who cannot seal');
  assert.ok(dan);
});

test('the log keeps the last 500 rows', async () => {
  const net = network(['bob']);
  const bob = /** @type {Page} */ (net.pages.get('bob'));
  const f = await forger();
  bob.chat.key('mal', { t: 'ck', k: 'k1', key: f.raw });
  for (let n = 1; n <= 505; n++) {
    bob.chat.take('mal', await f.frame('mal', 'k1', 'm' + n, n));
    net.clock.advance(1000);
  }
  await waitFor(() => textsFrom(bob, 'mal').at(-1) === 'm505');
  assert.equal(parts(bob).log.childElementCount, 500);
  assert.equal(textsFrom(bob, 'mal')[0], 'm6');
});

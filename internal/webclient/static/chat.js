// The channel's chat, sealed end to end. Each page makes its own AES-GCM
// chat key, hands it to each person present in a sealed direct message
// (the controller's pairwise sealing) before its first message to them,
// and broadcasts every message once, encrypted under it: the server
// relays ciphertext only. A receiver keeps a sender's keys while it comes
// and goes, and asks for a key that did not come (ckq). Loaded on demand (controller.js imports it with
// import()), so it imports nothing: what it needs of the page is handed
// in. Peer text only ever becomes text nodes; no HTML is parsed.

/**
 * @typedef {{
 *   channelId: string, self: string,
 *   section: HTMLElement,
 *   canSeal: boolean,
 *   subtle?: SubtleCrypto | null, random: (n: number) => Uint8Array,
 *   b64: {to: (b: Uint8Array) => string, from: (s: string) => Uint8Array},
 *   peers: () => {id: string, name: string, key: string}[],
 *   name: (id: string) => string,
 *   sendKey: (to: string, m: {t: 'ck', k: string, key: string} | {t: 'ckq'}) => Promise<void>,
 *   broadcast: (m: {t: 'chat', k: string, iv: string, c: string}) => Promise<void>,
 *   storage: Storage | null,
 *   win: any,
 *   now: () => number,
 *   announce: (text: string) => void,
 *   log: {warn: (...a: any[]) => void},
 * }} ChatOptions
 * section: the server-rendered #chat; canSeal: this page has Web Crypto
 * and a pairwise key pair; peers: the people present now (removed ones
 * excluded), key '' for those who cannot seal; sendKey: a sealed direct
 * message (a key, or the ask for one), rejecting when refused; broadcast: one frame to the channel,
 * rejecting {code: -32010} over the hub's budget; storage: sessionStorage;
 * win: the window (a fake in tests).
 * @typedef {{
 *   take: (from: string, m: any) => void, key: (from: string, m: any) => void,
 *   gone: (id: string) => void, removed: (id: string) => void,
 *   stop: (text: string) => void, peersChanged: () => void, fresh: (id?: string) => void,
 * }} Chat
 * key: a sealed direct message from a listed peer, its chat key (ck) or
 * its ask for ours (ckq); fresh: that peer (or, without id, everyone)
 * may lack this page's key: it is handed again before the next message
 * @typedef {{id: string, key: CryptoKey, raw: string}} OwnKey
 * @typedef {{t: number, at: number, said: boolean}} Bucket tokens, last refill, hiding said
 * @typedef {{k: string, iv: Uint8Array<ArrayBuffer>, c: Uint8Array<ArrayBuffer>, at: number, name: string, timer?: any}} Frame
 * @typedef {{keys: {id: string, key: CryptoKey, n: number}[], old: string[], wait: Frame[], b: Bucket, q: Promise<void>, dead?: boolean, ask: any, asked: number}} Sender
 *   keys: the last 2 (n: the last sequence number opened under it); old: ids of keys let go;
 *   ask: the timer asking for a missing key; asked: when it last asked
 * @typedef {{from: string, name: string, at: number, text: string, own: boolean}} Kept
 */

/** Code points in a message at most. */
const MAX = 2000;
/** Messages a member may send (and others show) at once; then one a second. */
const BURST = 10;
/** How long (ms) and how many messages (each sender's, everyone's) wait for their key. */
const WAIT = 10000, WAIT_EACH = 8, WAIT_ALL = 64;
/**
 * A message waiting this long (ms) for its key asks its sender for it,
 * at most once per ASK_GAP per sender; a page answers a peer's ask at
 * most once per ANSWER_GAP. A key can be lost in ways neither side sees:
 * the relay took it, but the receiver did not list the sender yet.
 */
const ASK_AFTER = 1000, ASK_GAP = 10000, ANSWER_GAP = 5000;
/** Senders whose keys a page keeps (the least recently heard from go first). */
const SENDERS = 256;
/** Rows the log keeps; messages (and characters of their JSON) the tab keeps. */
const ROWS = 500, KEEP = 100, KEEP_CHARS = 200000;
/** The hub's refusal of a request over the sender's budget. */
const RATE_LIMITED = -32010;
const TOO_FAST = 'You are sending messages too fast; wait a moment.';
const LATER = "People who join later don't see earlier messages; this tab keeps them until it closes.";
// http(s) links; bidirectional controls (and the invisible U+FEFF) end
// one, so what shows is where it goes.
const LINK = /\bhttps?:\/\/[^\s<>"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]+/gi;
const PREFIX = /^\(\d+\) /;

/** @param {any} k a key id as sent: 1 to 16 characters */
const isId = (k) => typeof k === 'string' && k.length > 0 && k.length <= 16;

/** @param {ChatOptions} o @returns {Chat} */
export function chat(o) {
  const { self, win, b64, log } = o;
  const subtle = /** @type {SubtleCrypto} */ (o.subtle);
  const doc = o.section.ownerDocument, d = win.document;
  const $ = (/** @type {string} */ s) => /** @type {any} */ (o.section.querySelector(s));
  const list = $('.messages'), note = $('.chat-note'), problem = $('.chat-problem'), more = $('.unread'), form = $('.send');
  const field = $('textarea'), send = form.querySelector('button');
  const enc = new TextEncoder();
  /** @param {string} sender @param {string} k */
  const aad = (sender, k) => enc.encode(o.channelId + '>' + sender + '>' + k);
  /** @param {string} what @param {any} e */
  const warn = (what, e) => log.warn('channels: chat: ' + what + ':', e);
  /**
   * The sender's problem, in p.chat-problem (role status); the same words
   * again go through the page's live region, as a status unchanged is
   * not read again. @param {string} text
   */
  const say = (text) => {
    if (text && problem.textContent === text) o.announce(text);
    problem.textContent = text;
  };
  let off = !o.canSeal || !subtle;

  /** @param {number} t @returns {Bucket} */
  const bucket = (t) => ({ t: BURST, at: t, said: false });
  /**
   * Takes one from the budget: BURST at once, refilled at one a second.
   * slack (s) lets a message that comes that much early through: the
   * network bunches a sender's messages up. The hiding is said again only
   * once the budget is full again (a burst ended).
   * @param {Bucket} b @param {number} slack
   */
  const spend = (b, slack) => {
    const now = o.now();
    b.t = Math.min(BURST, b.t + (now - b.at) / 1000);
    b.at = now;
    if (b.t >= BURST) b.said = false;
    if (b.t < 1 - slack) return false;
    b.t--;
    return true;
  };
  const out = bucket(o.now());

  /** A fresh chat key: random id, AES-256-GCM, raw for handing over. @returns {Promise<OwnKey>} */
  const make = async () => {
    const key = /** @type {CryptoKey} */ (await subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']));
    return { id: b64.to(o.random(9)), key, raw: b64.to(new Uint8Array(await subtle.exportKey('raw', key))) };
  };
  /** @type {Promise<OwnKey>} */
  let mine = off ? new Promise(() => {}) : make();
  mine.catch((e) => {
    warn('no key', e);
    stop('Chat could not start in this browser.');
  });
  let seq = 0;
  /** @type {Map<string, {tag: string, p: Promise<void>}>} who has (or is being sent) which key, by peer id */
  const given = new Map();
  /** @type {Map<string, {n: number, timer: any}>} key hand-overs to try again, by peer id */
  const retries = new Map();
  /** @type {Map<string, Sender>} by peer id, the least recently heard from first */
  const senders = new Map();
  /** @type {Map<string, number>} when each peer's ask for the key was last answered, the oldest first */
  const answered = new Map();
  let waiting = 0;

  /**
   * Hands the key to a peer unless it has it (for the public key it has
   * now). A refusal is logged and tried again at the next send and after
   * 2, 4, 8 s; nothing is marked given until it went.
   * @param {{id: string, key: string}} p @param {OwnKey} k @returns {Promise<void>}
   */
  const give = (p, k) => {
    const tag = p.key + ' ' + k.id, g = given.get(p.id);
    if (g && g.tag === tag) return g.p;
    const sent = o.sendKey(p.id, { t: 'ck', k: k.id, key: k.raw }).then(() => unretry(p.id), (e) => {
      if (given.get(p.id)?.p === sent) given.delete(p.id);
      warn('key to ' + p.id, e);
      const r = retries.get(p.id) || { n: 0, timer: 0 };
      if (r.timer || r.n >= 3 || off) return;
      r.timer = win.setTimeout(() => {
        r.timer = 0;
        const now = o.peers().find((x) => x.id === p.id);
        if (now && now.key && !off) mine.then((k) => give(now, k));
      }, 2000 << r.n++);
      retries.set(p.id, r);
    });
    given.set(p.id, { tag, p: sent });
    return sent;
  };
  /** Forgets a peer's hand-over to try again. @param {string} id */
  const unretry = (id) => {
    win.clearTimeout(retries.get(id)?.timer);
    retries.delete(id);
  };

  // The unread: rows not yet seen, with whether each was last seen in view
  // (undefined: not told yet). Without IntersectionObserver, the log is
  // taken as in view, and only a hidden tab leaves rows unread.
  // The form is watched too: out of view (data-away), the unread button
  // floats at the window's corner, where it cannot cover the form.
  /** @type {Map<Element, boolean | undefined>} */
  const unseen = new Map();
  const IO = win.IntersectionObserver;
  /** @type {IntersectionObserver | null} */
  const io = IO ? new IO((/** @type {IntersectionObserverEntry[]} */ es, /** @type {IntersectionObserver} */ obs) => {
    for (const e of es) {
      if (e.target === form) o.section.toggleAttribute('data-away', !e.isIntersecting);
      if (!unseen.has(e.target)) continue;
      if (e.isIntersecting && !d.hidden) {
        unseen.delete(e.target);
        obs.unobserve(e.target);
      } else unseen.set(e.target, e.isIntersecting);
    }
    shown();
  }) : null;
  io?.observe(form);
  /** @type {Notification | null} */
  let told = null;
  let notified = false;
  /** @type {Element | null} */
  let newest = null;

  /** The unread count on the button and, while the tab is hidden, in the title. */
  const shown = () => {
    let n = 0;
    for (const v of unseen.values()) if (d.hidden || v === false) n++;
    more.hidden = !n;
    more.textContent = n + ' unread';
    const bare = d.title.replace(PREFIX, ''), t = d.hidden && n ? '(' + n + ') ' + bare : bare;
    if (d.title !== t) d.title = t;
  };
  const seen = () => {
    for (const el of unseen.keys()) io?.unobserve(el);
    unseen.clear();
    shown();
  };
  d.addEventListener('visibilitychange', () => {
    if (d.hidden) return;
    told?.close();
    told = null;
    notified = false;
    if (!io) return seen();
    for (const [el, v] of unseen) if (v) unseen.delete(el);
    shown();
  });
  more.addEventListener('click', () => {
    /** @type {any} */ (newest)?.scrollIntoView?.({ block: 'end' });
    seen();
    list.focus?.({ preventScroll: true });
  });

  /** @param {string} tag @param {string} [cls] @param {string} [text] @returns {HTMLElement} */
  const el = (tag, cls, text) => {
    const e = doc.createElement(tag);
    if (cls) e.setAttribute('class', cls);
    if (text) e.textContent = text;
    return e;
  };

  /**
   * Puts text in p, its http(s) links as links opening a new tab. Each
   * link has dir=ltr, which isolates it (the browser's own style sheet:
   * unicode-bidi: isolate), so text around it cannot reorder how it shows;
   * the text itself stays as sent (no FSI/PDI in it), and the page's CSS,
   * with no room in its budget, needs no rule.
   * @param {HTMLElement} p @param {string} text
   */
  const fill = (p, text) => {
    let at = 0;
    for (const m of text.matchAll(LINK)) {
      let u = m[0].replace(/[.,;:!?'"]+$/, '');
      if (u.endsWith(')') && u.split('(').length < u.split(')').length) u = u.slice(0, -1);
      let href;
      try { href = new URL(u).href; } catch { continue; }
      p.append(text.slice(at, m.index), Object.assign(el('a', '', u), { href, target: '_blank', rel: 'noopener noreferrer', dir: 'ltr' }));
      at = /** @type {number} */ (m.index) + u.length;
    }
    p.append(text.slice(at));
  };

  /**
   * Adds a row to the log, keeping it in view if the end was.
   * @param {string} from @param {string} who ('' for the page's own words) @param {number} at
   * @param {string} text @param {string} cls
   */
  const row = (from, who, at, text, cls) => {
    const li = el('li', cls), t = el('time'), p = el('p', 'text'), when = new Date(at);
    li.dataset.from = from;
    t.setAttribute('datetime', when.toISOString());
    t.textContent = when.toTimeString().slice(0, 5); // HH:MM, local
    fill(p, text);
    if (who) li.append(el('span', 'who', who), ' ');
    li.append(t, p);
    const end = !(list.scrollHeight - list.scrollTop - list.clientHeight > 40);
    list.append(li);
    newest = li;
    while (list.childElementCount > ROWS) {
      const first = list.firstElementChild;
      first.remove();
      unseen.delete(first);
      io?.unobserve(first);
    }
    if (end) list.scrollTop = list.scrollHeight;
    return li;
  };

  /** @type {Kept[]} the messages this tab keeps */
  let kept = [];
  const key = 'channels.chat.' + o.channelId;
  let saving = 0;
  const save = () => {
    win.clearTimeout(saving);
    saving = 0;
    let s = JSON.stringify(kept);
    while (s.length > KEEP_CHARS && kept.length) s = JSON.stringify(kept = kept.slice(1));
    try { o.storage?.setItem(key, s); } catch (e) { warn('not kept', e); }
  };
  win.addEventListener('pagehide', () => { if (saving) save(); });

  /** A peer's message shown: kept for a reload, and unread until seen. @param {Kept} m */
  const message = (m) => {
    const li = row(m.from, m.name, m.at, m.text, 'msg');
    keep(m);
    unseen.set(li, undefined);
    if (io) io.observe(li);
    else if (!d.hidden) unseen.delete(li);
    const N = win.Notification;
    if (d.hidden && !notified && N && N.permission === 'granted') {
      notified = true; // one while the tab stays hidden
      try {
        told = new N('New message from ' + m.name, { tag: 'channels-chat' });
        /** @type {Notification} */ (told).onclick = () => win.focus();
      } catch (e) { warn('notification', e); }
    }
    shown();
  };
  /** @param {Kept} m */
  const keep = (m) => {
    if (kept.push(m) > KEEP) kept.shift();
    saving ||= win.setTimeout(save, 500);
  };

  // What this tab showed before a reload, marked as earlier.
  try {
    const was = JSON.parse(o.storage?.getItem(key) || '[]');
    if (Array.isArray(was)) {
      for (const m of was.slice(-KEEP)) {
        if (!m || typeof m.at !== 'number' || ![m.from, m.name, m.text].every((x) => typeof x === 'string')) continue;
        const k = { from: m.from, name: m.name, at: m.at, text: m.text, own: m.own === true };
        kept.push(k);
        row(k.from, k.name, k.at, k.text, k.own ? 'msg own earlier' : 'msg earlier');
      }
    }
  } catch (e) { warn('not restored', e); }

  /**
   * A sender's keys and waiting messages, made the most recent: kept when
   * it leaves (a reconnect comes back with the same key), forgotten when
   * it is removed, or when SENDERS others were heard from since.
   * @param {string} from
   */
  const sender = (from) => {
    const s = senders.get(from) || { keys: [], old: [], wait: [], b: bucket(o.now()), q: Promise.resolve(), ask: 0, asked: -Infinity };
    senders.delete(from);
    senders.set(from, s);
    if (senders.size > SENDERS) {
      const [id, least] = /** @type {[string, Sender]} */ (senders.entries().next().value);
      senders.delete(id);
      release(least, true, id);
    }
    return s;
  };
  /** Runs job after the sender's earlier ones (its keys, its messages in order). @param {Sender} s @param {() => Promise<void> | void} job */
  const run = (s, job) => {
    s.q = s.q.then(() => { if (!s.dead && !off) return job(); }).catch((e) => warn('from a peer', e));
  };
  /** @param {string} from @param {string} name */
  const unopened = (from, name) => row(from, '', o.now(), 'A message from ' + name + ' could not be opened.', 'notice');
  /** Lets go of the messages waiting for keys. @param {Sender} s @param {boolean} tell */
  const release = (s, tell, from = '') => {
    win.clearTimeout(s.ask);
    s.ask = 0;
    for (const f of s.wait) {
      win.clearTimeout(f.timer);
      waiting--;
      if (tell) unopened(from, f.name);
    }
    s.wait = [];
  };

  /** Opens a frame, or keeps it for its key. @param {string} from @param {Sender} s @param {Frame} f */
  const open = async (from, s, f) => {
    const k = s.keys.find((x) => x.id === f.k);
    if (!k) {
      if (s.old.includes(f.k)) return; // older than the sender's last two keys: a replay
      if (s.wait.length >= WAIT_EACH || waiting >= WAIT_ALL) return void unopened(from, f.name);
      waiting++;
      f.timer = win.setTimeout(() => {
        s.wait = s.wait.filter((x) => x !== f);
        waiting--;
        unopened(from, f.name);
      }, WAIT);
      s.wait.push(f);
      // Its key may be lost: asked for, unless it comes within ASK_AFTER.
      s.ask ||= win.setTimeout(() => {
        s.ask = 0;
        if (!s.wait.length || s.dead || off) return;
        s.asked = o.now();
        o.sendKey(from, { t: 'ckq' }).catch((e) => warn('key asked of ' + from, e));
      }, Math.max(ASK_AFTER, s.asked + ASK_GAP - o.now()));
      return;
    }
    /** @type {any} */
    let m;
    try {
      m = JSON.parse(new TextDecoder().decode(await subtle.decrypt({ name: 'AES-GCM', iv: f.iv, additionalData: aad(from, f.k) }, k.key, f.c)));
    } catch (e) {
      warn('not opened, from ' + from, e);
      return void unopened(from, f.name);
    }
    // A duplicate, or a replay: numbers only grow under a key.
    if (!m || typeof m.x !== 'string' || !m.x || !Number.isSafeInteger(m.n) || m.n <= k.n || s.dead || off) return;
    k.n = m.n;
    message({ from, name: f.name, at: f.at, text: [...m.x].length > MAX ? '(a message too long to show)' : m.x, own: false });
  };

  const sealNote = () => {
    if (off) return;
    const cannot = o.peers().filter((p) => !p.key).map((p) => p.name);
    const names = cannot.length > 3 ? cannot.slice(0, 3).join(', ') + ' and ' + (cannot.length - 3) + ' more' : cannot.join(', ');
    note.textContent = 'Sealed end to end' + (!cannot.length ? ' with everyone here: the server relays only ciphertext. '
      : ', but ' + names + ' cannot receive messages: their browser' + (cannot.length > 1 ? 's' : '') + ' cannot seal them, so they are sent nothing. ') + LATER;
  };

  /** @param {string} text */
  const stop = (text) => {
    off = true;
    field.disabled = send.disabled = true;
    say(text);
    for (const [id, s] of senders) {
      release(s, false);
      senders.delete(id);
    }
    for (const id of [...retries.keys()]) unretry(id);
  };

  /** @type {{text: string, at: number, li: HTMLElement}[]} messages shown as sent, in order, until the hub took them */
  const outbox = [];
  let sending = false;
  /**
   * Sends the outbox in order: the key to whoever lacks it, then one
   * broadcast each. A refusal takes back the message and those after it
   * (the hub's budget would refuse them too): their rows go and their
   * text is put back in the field, before what was typed since.
   */
  const pump = async () => {
    if (sending) return;
    sending = true;
    while (outbox.length) {
      const { text, at } = outbox[0];
      try {
        const k = await mine;
        await Promise.all(o.peers().filter((p) => p.key).map((p) => give(p, k)));
        const iv = o.random(12);
        const c = await subtle.encrypt({ name: 'AES-GCM', iv: /** @type {Uint8Array<ArrayBuffer>} */ (iv), additionalData: aad(self, k.id) }, k.key, enc.encode(JSON.stringify({ x: text, n: ++seq })));
        if (off) throw new Error('stopped');
        await o.broadcast({ t: 'chat', k: k.id, iv: b64.to(iv), c: b64.to(new Uint8Array(c)) });
        outbox.shift();
        keep({ from: self, name: 'You', at, text, own: true });
      } catch (e) {
        warn('not sent', e);
        const back = outbox.splice(0);
        for (const m of back) m.li.remove();
        if (off) break;
        field.value = [...back.map((m) => m.text), field.value].filter(Boolean).join('\n');
        say(e && /** @type {any} */ (e).code === RATE_LIMITED ? TOO_FAST : 'The message could not be sent; try again.');
      }
    }
    sending = false;
  };
  /** The field's text: refused at once (too long, too fast: it stays there), or shown and sent. */
  const submit = () => {
    const text = field.value.trim();
    if (off || !text) return;
    if ([...text].length > MAX) return say('Messages are at most 2,000 characters');
    if (!spend(out, 0)) return say(TOO_FAST);
    say('');
    field.value = '';
    const at = o.now();
    outbox.push({ text, at, li: row(self, 'You', at, text, 'msg own') });
    pump();
  };
  form.addEventListener('submit', (/** @type {Event} */ e) => {
    e.preventDefault();
    submit();
  });
  field.addEventListener('keydown', (/** @type {KeyboardEvent} */ e) => {
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing) return;
    e.preventDefault();
    submit();
  });

  /**
   * A peer asked for this page's key (a message of ours waits for it
   * there): its current key goes to that peer again, if listed with a
   * key, at most once per ANSWER_GAP. @param {string} from
   */
  const answer = (from) => {
    const p = o.peers().find((x) => x.id === from), now = o.now();
    if (off || !p?.key || now - (answered.get(from) ?? -Infinity) < ANSWER_GAP) return;
    answered.delete(from);
    if (answered.set(from, now).size > SENDERS) answered.delete(/** @type {string} */ (answered.keys().next().value));
    given.delete(from);
    mine.then((k) => give(p, k)).catch((e) => warn('key to ' + from, e));
  };
  /** The peers listed at the last change: one listed anew may lack the key. */
  let listed = new Set(off ? [] : o.peers().map((p) => p.id));
  const changed = () => {
    const now = o.peers().map((p) => p.id);
    for (const id of now) if (!listed.has(id)) given.delete(id);
    listed = new Set(now);
    sealNote();
  };

  /** Whether to look further at what a peer sent: it has a key id. @param {any} from @param {any} m */
  const usable = (from, m) => !off && from && from !== self && m && isId(m.k);

  if (off) stop('Chat needs this page over https');
  else sealNote();
  o.section.dataset.ready = ''; // the form is the chat's now

  return {
    take(from, m) {
      try {
        if (!usable(from, m) || typeof m.iv !== 'string' || typeof m.c !== 'string' || m.c.length > 21848) return;
        const f = { k: m.k, iv: /** @type {Uint8Array<ArrayBuffer>} */ (b64.from(m.iv)), c: /** @type {Uint8Array<ArrayBuffer>} */ (b64.from(m.c)), at: o.now(), name: o.name(from) };
        if (f.iv.length !== 12 || f.c.length < 17 || f.c.length > 16384) return;
        const s = sender(from);
        // Shown at most BURST at once, then one a second: more is hidden, and said once a burst.
        if (!spend(s.b, 0.5)) {
          if (!s.b.said) row(from, '', f.at, 'Some messages from ' + f.name + ' were hidden: sent too fast.', 'notice');
          s.b.said = true;
          return;
        }
        run(s, () => open(from, s, f));
      } catch (e) { warn('message from ' + from, e); }
    },
    key(from, m) {
      try {
        if (m?.t === 'ckq') return void (from !== self && answer(from));
        if (!usable(from, m) || typeof m.key !== 'string' || m.key.length > 64) return;
        const raw = /** @type {Uint8Array<ArrayBuffer>} */ (b64.from(m.key));
        if (raw.length !== 32) return;
        const s = sender(from);
        run(s, async () => {
          if (s.keys.some((x) => x.id === m.k) || s.old.includes(m.k)) return; // taken once
          const key = await subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']);
          s.keys.push({ id: m.k, key, n: 0 });
          const dropped = s.keys.length > 2 && s.keys.shift();
          if (dropped) s.old = [...s.old.slice(-15), dropped.id];
          const ready = s.wait.filter((f) => f.k === m.k);
          s.wait = s.wait.filter((f) => f.k !== m.k);
          for (const f of ready) {
            win.clearTimeout(f.timer);
            waiting--;
            await open(from, s, f);
          }
        });
      } catch (e) { warn('key from ' + from, e); }
    },
    gone(id) {
      const s = senders.get(id);
      given.delete(id);
      unretry(id);
      // After what it sent before it left. Its keys stay: a page that
      // lost its connection for a moment comes back with the same key and
      // need not hand it over again (see fresh for the other direction).
      if (s) run(s, () => release(s, true, id));
    },
    removed(id) {
      const s = senders.get(id);
      senders.delete(id);
      given.clear();
      unretry(id);
      if (s) {
        s.dead = true;
        release(s, false);
      }
      if (off) return;
      // A new key that the removed person never gets; everyone else gets it with the next message.
      mine = make();
      mine.catch((e) => warn('no key', e));
    },
    stop,
    peersChanged: changed,
    fresh(id) {
      if (id === undefined) given.clear();
      else given.delete(id);
    },
  };
}

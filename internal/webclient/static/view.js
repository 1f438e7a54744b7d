// The channel page's DOM. Peer-supplied text is only ever set with
// textContent; nothing is parsed as HTML. State is mirrored into data-*
// attributes, which the stylesheet (and the end-to-end tests) read.

/**
 * Makes an element. Strings among the children become text nodes.
 * @param {string} tag @param {Record<string, string>} [attrs] @param {...(Node|string)} kids
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...kids);
  return el;
}

/** What a removed person reads, in the status and the chat. */
export const REMOVED = 'You were removed from this channel';

const CONN_TEXT = /** @type {Record<string, string>} */ ({
  connecting: 'Connecting…',
  ready: 'Online',
  reconnecting: 'Reconnecting…',
  punted: 'Opened in another tab',
  'login failed': 'Login failed',
  closed: 'Offline',
  removed: REMOVED,
});

/**
 * @typedef {{id: string, name: string}} PeerItem
 * @typedef {{
 *   call: (id: string) => void, accept: () => void, decline: () => void, hangup: () => void,
 *   mic: () => void, camera: () => void, share: () => void, name: (n: string) => void,
 *   device: (kind: 'audio'|'video', id: string) => void, reconnect: () => void,
 *   preview: (on: boolean) => void, chat: () => void,
 * }} Actions
 * What the managers' moderation (moderate.js) adds to the view: to each
 * row of the people list as it is made or updated, and on a change of the
 * channel's lock.
 * @typedef {{row: (li: HTMLElement, p: PeerItem) => void, lock: (on: boolean) => void}} ModHook
 */

/**
 * One other person in the call: the link's state ('calling', 'connecting',
 * 'in call', 'reconnecting'; links still ringing are no tiles), their media,
 * what they told us of their microphone, camera and screen, whether they
 * speak now, and a problem to show on the tile ('' if none).
 * @typedef {{id: string, name: string, state: string, remote: MediaStream|null,
 *   mic: boolean, cam: boolean, sharing: boolean, speaking: boolean, problem: string, code?: string}} TileInfo
 *   code: the safety code of the pair, shown on the tile when several share a call
 * The whole call as the page shows it. request: someone ringing us, either
 * a call while idle (join false: state 'ringing') or someone asking to join
 * the call under way (join true: the call goes on, a prompt shows over the
 * tiles). reason: why the call ended, shown when idle.
 * @typedef {{
 *   state: 'idle'|'calling'|'ringing'|'connecting'|'in call'|'reconnecting',
 *   outgoing: boolean, reason: string,
 *   request: {id: string, name: string, join: boolean} | null,
 *   local: MediaStream|null, micOn: boolean, camOn: boolean,
 *   sharing: boolean, canShare: boolean,
 *   tiles: TileInfo[],
 * }} CallShow
 * A tile's elements, what its caption says, and whether its person joined.
 * @typedef {{f: HTMLElement, v: HTMLVideoElement, n: HTMLElement, c: HTMLElement, k: HTMLElement, words: string, joined: boolean}} Tile
 */

/** What a tile says of a link not (or no longer) up, when no problem says more. */
const LINK_TEXT = /** @type {Record<string, string>} */ ({ calling: 'Calling…', connecting: 'Connecting…', reconnecting: 'Reconnecting…' });

/**
 * What an incoming call does besides the page itself: a tone made with Web
 * Audio (two short beeps every 2 s; where the browser wants a gesture
 * first, from the next click or key press on), the tab title flashing
 * every second, and a system notification when the tab is hidden, only if
 * the person already allowed them.
 */
export class Ringer {
  /** @param {any} [w] the window (a fake one in tests) */
  constructor(w = globalThis) {
    this.w = w;
    this.timer = 0;
    this.title = '';
    /** @type {{ctx: AudioContext, osc: OscillatorNode, gain: GainNode} | null} */
    this.audio = null;
    /** @type {Notification | null} */
    this.note = null;
    /** Starts a tone the browser held back; one per ringing. */
    this.wake = () => {
      const a = this.audio;
      if (!a || a.ctx.state === 'running') return;
      a.ctx.resume().then(() => this.beep(), (e) => console.warn('channels: ring:', e));
    };
  }

  /** Starts ringing; does nothing while ringing already. @param {string} name */
  start(name) {
    if (this.timer) return;
    const w = this.w, d = w.document;
    this.title = d.title;
    const ring = '📞 ' + name + ' is calling';
    let n = 0;
    const tick = () => {
      d.title = n % 2 ? this.title : ring;
      if (n++ % 2 === 0) this.beep();
    };
    this.audio = tone(w.AudioContext);
    // Without a gesture on the page yet, the browser holds the tone back.
    for (const ev of ['pointerdown', 'keydown']) w.addEventListener(ev, this.wake, true);
    tick();
    this.timer = w.setInterval(tick, 1000);
    const N = w.Notification;
    if (d.hidden && N && N.permission === 'granted') {
      try {
        const note = new N(name + ' is calling', { tag: 'channels-call', requireInteraction: true });
        note.onclick = () => w.focus();
        this.note = note;
      } catch { /* some browsers only notify from a service worker */ }
    }
  }

  /** Two beeps from now on. */
  beep() {
    const a = this.audio;
    if (!a) return;
    const t = a.ctx.currentTime, g = a.gain.gain;
    for (const at of [t, t + 0.5]) {
      g.setTargetAtTime(0.12, at, 0.01);
      g.setTargetAtTime(0, at + 0.3, 0.01);
    }
  }

  /** Stops ringing and restores the title. */
  stop() {
    if (!this.timer) return;
    this.w.clearInterval(this.timer);
    this.timer = 0;
    for (const ev of ['pointerdown', 'keydown']) this.w.removeEventListener(ev, this.wake, true);
    this.w.document.title = this.title;
    const a = this.audio;
    this.audio = null;
    if (a) {
      try { a.osc.stop(); } catch { /* never started */ }
      // Closing only frees the audio thread; a failure leaves nothing to undo.
      a.ctx.close().catch(() => {});
    }
    this.note?.close();
    this.note = null;
  }
}

/**
 * One oscillator behind a silent gain, running for the whole ringing; the
 * beeps only move the gain. @param {typeof AudioContext | undefined} AC
 */
function tone(AC) {
  if (!AC) return null;
  try {
    const ctx = new AC();
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = 440;
    gain.gain.value = 0;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    // Without a gesture this waits (or fails); Ringer retries on the next one.
    ctx.resume().catch(() => { /* retried on the next gesture */ });
    return { ctx, osc, gain };
  } catch {
    return null;
  }
}

/**
 * The words announced for a call's change of state, or ''.
 * @param {string} prev @param {string} state @param {string} name @param {string} reason
 */
export function callNews(prev, state, name, reason) {
  if (prev === state) return '';
  if (state === 'ringing') return name + ' is calling';
  if (state === 'calling') return 'Calling ' + name;
  if (state === 'in call') return prev === 'reconnecting' ? 'Call reconnected' : 'Call with ' + name + ' connected';
  if (state === 'reconnecting') return 'Call interrupted, reconnecting';
  if (state === 'idle' && prev) return reason || 'Call ended';
  return '';
}

/** The words announced for a change of connection, or ''. @param {string} prev @param {string} state */
export function connNews(prev, state) {
  if (prev === state) return '';
  if (state === 'ready') return 'Connected to the server';
  if (['reconnecting', 'punted', 'login failed', 'removed'].includes(state)) return CONN_TEXT[state];
  return '';
}

export class View {
  /** @type {ModHook | null | undefined} the managers' tools, once loaded */
  mod;

  /**
   * @param {HTMLElement} root @param {Actions} act
   * @param {HTMLElement | null} [chat] the chat, server-rendered after root: it moves in, after the people
   */
  constructor(root, act, chat) {
    this.root = root;
    this.act = act;
    const btn = (/** @type {string} */ text, /** @type {string} */ cls, /** @type {() => void} */ f) => {
      const b = h('button', { type: 'button', class: cls }, text);
      b.addEventListener('click', f);
      return b;
    };
    this.status = h('p', { class: 'status' }, CONN_TEXT.connecting);
    // The one live region: changes in words, so that nothing speaks twice.
    this.live = h('div', { class: 'announce', 'aria-live': 'polite' });
    this.callState = '';
    this.connState = '';
    this.retry = btn('Use here', 'retry', act.reconnect);
    this.retry.hidden = true;
    // One tile per other person in the call, in place by id (see setTiles).
    this.tiles = h('div', { class: 'tiles', 'data-count': '0' });
    /** @type {Map<string, Tile>} */
    this.tileMap = new Map();
    /** @type {WeakSet<HTMLVideoElement>} videos whose play() the browser refused */
    this.refused = new WeakSet();
    // The call has been up (in call) since it started: who comes or goes is news.
    this.up = false;
    this.asking = '';
    this.local = /** @type {HTMLVideoElement} */ (h('video', { class: 'local', autoplay: '', playsinline: '' }));
    this.local.muted = true;
    this.say = h('p', { class: 'say' }, 'Choose someone to call.');
    this.ask = h('p', { class: 'ask' });
    this.note = h('p', { class: 'note', role: 'note' });
    this.note.hidden = true;
    this.accept = btn('Accept', 'accept', act.accept);
    this.decline = btn('Decline', 'decline', act.decline);
    this.incoming = h('div', { class: 'incoming' }, this.accept, this.decline);
    this.mic = btn('Mute', 'mic', act.mic);
    this.cam = btn('Stop camera', 'cam', act.camera);
    this.share = btn('Share screen', 'share', act.share);
    this.hang = btn('Hang up', 'hangup', act.hangup);
    this.secure = h('p', { class: 'secure' });
    this.stats = h('p', { class: 'stats' });
    this.audioSel = /** @type {HTMLSelectElement} */ (h('select', { name: 'audio' }));
    this.videoSel = /** @type {HTMLSelectElement} */ (h('select', { name: 'video' }));
    this.audioSel.addEventListener('change', () => act.device('audio', this.audioSel.value));
    this.videoSel.addEventListener('change', () => act.device('video', this.videoSel.value));
    // The camera check's microphone level, under the microphone's choice.
    this.level = /** @type {HTMLMeterElement} */ (h('meter', { class: 'level', min: '0', max: '1', value: '0', 'aria-label': 'Microphone level' }));
    // One choice of devices: in the call's controls during a call, in the camera check before.
    this.devs = [h('label', {}, 'Microphone ', this.audioSel, this.level), h('label', {}, 'Camera ', this.videoSel)];
    this.devBox = h('details', { class: 'devices' }, h('summary', {}, 'Devices'));
    this.controls = h('div', { class: 'controls' }, this.mic, this.cam, this.share, this.hang, this.devBox);
    // The camera check, before any call: the own video, the devices, the microphone's level.
    this.check = btn('', 'check', () => act.preview(root.dataset.preview === 'off'));
    this.check.hidden = true;
    this.panel = h('div', { class: 'preview' }, ...this.devs);
    /** @type {MediaStream | null} the camera check's stream */
    this.own = null;
    /** @type {CallShow | null} */
    this.current = null;
    this.problem = h('p', { class: 'problem' });
    // Browsers refuse play() with sound until the page has had a gesture;
    // the refused video waits for the next one, this button inviting it.
    this.start = btn('Click to start video and sound', 'start', () => this.play());
    const gesture = () => { if (!this.start.hidden) this.play(); };
    addEventListener('pointerdown', gesture, true);
    addEventListener('keydown', gesture, true);
    addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && root.dataset.call === 'ringing') {
        e.preventDefault();
        act.decline();
      }
    });
    const stage = h('section', { class: 'stage', 'aria-label': 'Call' },
      this.tiles, this.local, h('div', { class: 'overlay' }, this.say, this.ask, this.start, this.incoming, this.check, this.problem, this.secure, this.stats),
      this.panel, this.controls);

    this.nameInput = /** @type {HTMLInputElement} */ (h('input', { name: 'name', maxlength: '40', autocomplete: 'nickname', required: '' }));
    const form = h('form', { class: 'me' }, h('label', {}, 'Your name ', this.nameInput), h('button', { type: 'submit' }, 'Save'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      act.name(this.nameInput.value);
    });
    this.peers = h('ul', { class: 'peers' });
    /** @type {Map<string, HTMLElement>} each peer's row */
    this.rows = new Map();
    this.canCall = false;
    /** @type {Set<string> | null} */
    this.inCall = null;
    this.empty = h('p', { class: 'empty' }, 'Nobody else is here yet. Share this page’s address to invite someone.');
    // Styled as the note above it.
    this.locked = h('p', { class: 'note locked-note', hidden: '' }, 'This channel is locked: nobody new can join.');
    const people = h('aside', { class: 'people', 'aria-label': 'People' },
      h('h2', {}, 'People here'), this.status, this.retry, this.note, this.locked, this.peers, this.empty, form);
    const N = globalThis.Notification;
    if (N && N.permission === 'default') {
      // Asked only on this click, never by itself.
      const ask = btn('Notify me of calls', 'notify', () => {
        N.requestPermission().then(() => { ask.hidden = N.permission !== 'default'; }, (e) => this.warn('Notifications could not be turned on: ' + e.message));
      });
      people.append(ask);
    }
    root.replaceChildren(stage, people, this.live);
    if (chat) {
      // Beside the people on a wide screen, after them on a phone. Its code
      // loads when it takes the focus, or a pointer (a window without the
      // system's focus gets no focus events), or input (its form, method
      // dialog, sends nothing before).
      people.after(chat);
      for (const e of ['focusin', 'pointerdown', 'input']) chat.addEventListener(e, act.chat);
    }
    this.setCall(null, '');
    this.setConn('connecting');
  }

  /** Plays every paused tile's media; a refusal shows the start button (see showStart). */
  play() {
    let n = 0;
    for (const { v } of this.tileMap.values()) {
      if (!v.srcObject || !v.paused) continue;
      n++;
      v.play().then(() => this.refused.delete(v), () => this.refused.add(v)).then(() => this.showStart());
    }
    if (!n) this.showStart();
  }

  /** The start button shows while a video with a stream, refused, stays paused (never while ringing: see setCall). */
  showStart() {
    this.start.hidden = this.callState === 'ringing' || ![...this.tileMap.values()].some(({ v }) => v.srcObject && v.paused && this.refused.has(v));
  }

  /** Says text through the live region, keeping the last few. @param {string} text */
  announce(text) {
    if (!text) return;
    this.live.append(h('p', {}, text));
    while (this.live.childElementCount > 3) this.live.firstElementChild?.remove();
  }

  /** @param {string} state @param {string} [detail] */
  setConn(state, detail) {
    this.announce(connNews(this.connState, state));
    this.connState = state;
    this.root.dataset.conn = state;
    this.status.textContent = CONN_TEXT[state] + (detail && state === 'login failed' ? ': ' + detail : '');
    this.retry.hidden = state !== 'punted';
  }

  /** Tells the person something went wrong, until a call starts or ends (or the camera check changes). @param {string} text */
  warn(text) {
    this.problem.textContent = text;
    this.announce(text);
  }

  /**
   * The camera check: state, stream and what is wrong, if anything.
   * @param {'off'|'starting'|'on'} state @param {MediaStream | null} stream @param {string} problem
   */
  setPreview(state, stream, problem) {
    this.root.dataset.preview = state;
    this.own = stream;
    this.check.textContent = state === 'off' ? 'Check camera and microphone' : 'Turn camera and microphone off';
    this.check.setAttribute('aria-expanded', String(state !== 'off'));
    if (problem) this.warn(problem);
    else if (state !== 'on') this.problem.textContent = '';
    this.showOwn();
  }

  /** @param {number} v the microphone's level, 0 to 1 */
  setLevel(v) {
    this.level.value = v;
  }

  /** The own video and where the device choice sits: the call's, or the camera check's. */
  showOwn() {
    const c = this.current, live = !!c && c.state !== 'idle';
    const s = live ? c.local : this.own;
    if (this.local.srcObject !== s) this.local.srcObject = s;
    this.local.hidden = !s;
    this.root.toggleAttribute('data-check', !live && !!this.own);
    this.check.hidden = live || !this.root.dataset.preview;
    const home = live ? this.devBox : this.panel;
    if (this.devs[0].parentNode !== home) home.append(...this.devs);
  }

  /** @param {string} text a standing notice */
  setNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  /** Whether the channel is locked: nobody new can join. @param {boolean} on */
  setLocked(on) {
    this.locked.hidden = !on;
    this.mod?.lock(on);
  }

  /** @param {string} name */
  setName(name) {
    this.nameInput.value = name;
  }

  /**
   * Updates the people list in place, one row per peer id, so that a
   * focused Call button keeps its focus; the live region says only what
   * changed (who joined, left, or changed name), in one announcement.
   * Joined are only the arrived, peers who just said hello: others new to
   * the list were here before (they answer the page's own hello, one by
   * one, as it opens). While no call can start, the buttons say so with
   * aria-disabled rather than disabled, which would take the focus away
   * from them. During a call (inCall: the ids in it) the buttons add
   * people to it ("Add"), and say "In call" for those in it already.
   * @param {PeerItem[]} peers @param {boolean} canCall @param {string[]} [arrived] ids
   * @param {Set<string> | null} [inCall]
   */
  setPeers(peers, canCall, arrived = [], inCall = null) {
    const list = this.peers, rows = this.rows, had = document.activeElement, ids = new Set(peers.map((p) => p.id));
    /** @type {string[]} */
    const news = [];
    this.canCall = canCall;
    this.inCall = inCall;
    for (const [id, li] of rows) {
      if (!ids.has(id)) {
        news.push(li.children[0].textContent + ' left');
        li.remove();
        rows.delete(id);
      }
    }
    let at = list.firstChild;
    for (const p of peers) {
      let li = rows.get(p.id);
      if (!li) {
        const b = h('button', { type: 'button', class: 'call' }, 'Call');
        b.addEventListener('click', () => { if (this.canCall && !this.inCall?.has(p.id)) this.act.call(p.id); });
        rows.set(p.id, li = h('li', { 'data-peer': p.id }, h('span', { class: 'name' }, p.name), b));
        if (arrived.includes(p.id)) news.push(p.name + ' joined');
      }
      const [name, b] = li.children;
      if (name.textContent !== p.name) {
        news.push(name.textContent + ' is now ' + p.name);
        name.textContent = p.name;
      }
      const text = !inCall ? 'Call' : inCall.has(p.id) ? 'In call' : 'Add';
      if (b.textContent !== text) b.textContent = text;
      b.setAttribute('aria-disabled', String(!canCall || text === 'In call'));
      this.mod?.row(li, p);
      if (li === at) at = li.nextSibling;
      else list.insertBefore(li, at);
    }
    // Moving a row blurs its button (browsers without moveBefore): the focus goes back.
    if (had !== document.activeElement && list.contains(had)) /** @type {HTMLElement} */ (had).focus();
    this.announce(news.join(', '));
    this.empty.hidden = peers.length > 0;
  }

  /**
   * Shows the call (null: none).
   * @param {CallShow | null} show @param {string} secure a note on end-to-end encryption
   */
  setCall(show, secure) {
    const state = show ? show.state : 'idle', live = state !== 'idle', ringing = state === 'ringing';
    const tiles = live && show ? show.tiles : [], req = live && show ? show.request : null;
    const join = !!req && req.join && !ringing, names = tiles.map((t) => t.name).join(', ');
    const name = ringing && req ? req.name : names;
    // The first render (callState '') announces nothing.
    const news = this.callState ? [callNews(this.callState, state, name, show ? show.reason : '')] : [];
    // Warnings last the call they concern: cleared as one starts or ends.
    if ((this.callState === 'idle') !== (state === 'idle')) this.problem.textContent = '';
    this.callState = state;
    this.current = show;
    const root = this.root;
    root.dataset.secure = String(secure.startsWith('Signalling end'));
    root.dataset.call = state;
    root.dataset.direction = show ? (show.outgoing ? 'out' : 'in') : '';
    if (join) root.dataset.request = 'join';
    else delete root.dataset.request;
    const say = /** @type {Record<string, string>} */ ({
      calling: 'Calling ' + name + '…',
      ringing: name + ' is calling you',
      connecting: 'Connecting to ' + name + '…',
      'in call': name,
      reconnecting: 'Reconnecting to ' + name + '…',
      idle: show && show.reason ? show.reason + '. Choose someone to call.' : 'Choose someone to call.',
    });
    this.say.textContent = say[state];
    // Someone asking to join: the same Accept and Decline, over the call going on.
    this.ask.textContent = join ? req.name + ' asks to join' : '';
    this.ask.hidden = !join;
    this.incoming.hidden = !ringing && !join;
    this.controls.hidden = !live || ringing;
    this.secure.textContent = live && !ringing ? secure : '';
    if (!live) this.stats.textContent = '';
    const off = (/** @type {HTMLElement} */ b, /** @type {boolean} */ on, /** @type {string} */ yes, /** @type {string} */ no) => {
      b.textContent = on ? yes : no;
      b.setAttribute('aria-pressed', String(on));
    };
    off(this.mic, !!show && !show.micOn, 'Unmute', 'Mute');
    off(this.cam, !!show && !show.camOn, 'Start camera', 'Stop camera');
    off(this.share, !!show && show.sharing, 'Stop sharing', 'Share screen');
    this.share.hidden = !show || !show.canShare;
    news.push(...this.setTiles(tiles, this.up && live));
    this.up = live && (this.up || state === 'in call');
    if (join && this.asking !== req.id) news.push(req.name + ' asks to join');
    this.asking = join ? req.id : '';
    // While ringing, the callee sees who calls and the two buttons, which
    // must not move under the pointer: the caller's video (black anyway, as
    // nothing flows before accepting) and the start button wait for Accept.
    // The stream is attached already, so that audio output can start early.
    this.tiles.hidden = ringing || !tiles.length;
    this.showOwn();
    this.play();
    this.announce(news.filter(Boolean).join('. '));
  }

  /**
   * Updates the tiles in place, one per id in the order given: a tile
   * whose video plays is never made again (that would restart it), and a
   * stream is set only when it changes. Returns who joined (their link
   * came up for the first time) or left (their tile went, having joined),
   * said only when `up`, the call having been up before and going on.
   * @param {TileInfo[]} tiles @param {boolean} up @returns {string[]}
   */
  setTiles(tiles, up) {
    const box = this.tiles, map = this.tileMap, ids = new Set(tiles.map((t) => t.id));
    /** @type {string[]} */
    const news = [];
    for (const [id, t] of map) {
      if (ids.has(id)) continue;
      if (up && t.joined) news.push(t.n.textContent + ' left the call');
      t.v.srcObject = null;
      t.f.remove();
      map.delete(id);
    }
    let at = box.firstChild;
    for (const i of tiles) {
      let t = map.get(i.id);
      if (!t) {
        const v = /** @type {HTMLVideoElement} */ (h('video', { class: 'remote', autoplay: '', playsinline: '' }));
        v.addEventListener('pause', () => this.play());
        const n = h('b'), c = h('figcaption', {}, n), k = h('small', { class: 'code' });
        map.set(i.id, t = { f: h('figure', { class: 'tile', 'data-peer': i.id }, v, c, k), v, n, c, k, words: '', joined: false });
      }
      const f = t.f;
      if (t.v.srcObject !== i.remote) t.v.srcObject = i.remote;
      if (t.n.textContent !== i.name) t.n.textContent = i.name;
      const words = [i.mic ? '' : 'Muted', i.cam ? '' : 'Camera off', i.sharing ? 'Sharing screen' : '', i.problem || LINK_TEXT[i.state] || ''].filter(Boolean);
      const said = words.join('\n');
      if (t.words !== said) {
        t.words = said;
        t.c.replaceChildren(t.n, ...words.map((w) => h('small', {}, w)));
      }
      const code = i.code || '';
      if (t.k.textContent !== code) t.k.textContent = code;
      t.k.hidden = !code;
      f.setAttribute('aria-label', i.name + words.map((w) => ', ' + w.toLowerCase()).join('') + (code ? ', safety code ' + code : ''));
      f.setAttribute('data-state', i.state);
      for (const [k, on] of /** @type {const} */ ([['data-mic', !i.mic], ['data-cam', !i.cam]])) {
        if (on) f.setAttribute(k, 'off');
        else f.removeAttribute(k);
      }
      f.toggleAttribute('data-speaking', i.speaking);
      f.toggleAttribute('data-sharing', i.sharing);
      if (i.state === 'in call' && !t.joined) {
        t.joined = true;
        if (up) news.push(i.name + ' joined the call');
      }
      if (f === at) at = f.nextSibling;
      else box.insertBefore(f, at);
    }
    box.setAttribute('data-count', String(tiles.length));
    // Of several, one's own video joins the grid as its last cell.
    if ((tiles.length > 1) !== (this.local.parentNode === box)) {
      if (tiles.length > 1) box.append(this.local);
      else box.after(this.local);
    }
    return news;
  }

  /** @param {number} bytes received so far @param {number} kbps */
  setStats(bytes, kbps) {
    this.root.dataset.rxBytes = String(bytes);
    this.stats.textContent = '↓ ' + kbps + ' kbit/s';
  }

  /**
   * Fills the device choice; `using` names the devices in use, which show as chosen.
   * @param {MediaDeviceInfo[]} list @param {{audio?: string, video?: string}} using
   */
  setDevices(list, using) {
    for (const [sel, kind, k] of /** @type {const} */ ([[this.audioSel, 'audioinput', 'audio'], [this.videoSel, 'videoinput', 'video']])) {
      const cur = using[k] || sel.value;
      sel.replaceChildren(...list.filter((d) => d.kind === kind).map((d, i) => new Option(d.label || kind + ' ' + (i + 1), d.deviceId, false, d.deviceId === cur)));
    }
  }
}

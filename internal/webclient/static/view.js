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

const CONN_TEXT = /** @type {Record<string, string>} */ ({
  connecting: 'Connecting…',
  ready: 'Online',
  reconnecting: 'Reconnecting…',
  punted: 'Opened in another tab',
  'login failed': 'Login failed',
  closed: 'Offline',
});

/**
 * @typedef {{id: string, name: string}} PeerItem
 * @typedef {{
 *   call: (id: string) => void, accept: () => void, decline: () => void, hangup: () => void,
 *   mic: () => void, camera: () => void, name: (n: string) => void,
 *   device: (kind: 'audio'|'video', id: string) => void, reconnect: () => void,
 * }} Actions
 */

export class View {
  /** @param {HTMLElement} root @param {Actions} act */
  constructor(root, act) {
    this.root = root;
    this.act = act;
    const btn = (/** @type {string} */ text, /** @type {string} */ cls, /** @type {() => void} */ f) => {
      const b = h('button', { type: 'button', class: cls }, text);
      b.addEventListener('click', f);
      return b;
    };
    this.status = h('p', { class: 'status', role: 'status' }, CONN_TEXT.connecting);
    this.retry = btn('Use here', 'retry', act.reconnect);
    this.retry.hidden = true;
    this.remote = /** @type {HTMLVideoElement} */ (h('video', { class: 'remote', autoplay: '', playsinline: '' }));
    this.local = /** @type {HTMLVideoElement} */ (h('video', { class: 'local', autoplay: '', playsinline: '' }));
    this.local.muted = true;
    this.remote.addEventListener('pause', () => this.play());
    this.say = h('p', { class: 'say', 'aria-live': 'polite' }, 'Choose someone to call.');
    this.note = h('p', { class: 'note', role: 'note' });
    this.note.hidden = true;
    this.accept = btn('Accept', 'accept', act.accept);
    this.decline = btn('Decline', 'decline', act.decline);
    this.incoming = h('div', { class: 'incoming' }, this.accept, this.decline);
    this.mic = btn('Mute', 'mic', act.mic);
    this.cam = btn('Stop camera', 'cam', act.camera);
    this.hang = btn('Hang up', 'hangup', act.hangup);
    this.secure = h('p', { class: 'secure' });
    this.stats = h('p', { class: 'stats' });
    this.audioSel = /** @type {HTMLSelectElement} */ (h('select', { name: 'audio' }));
    this.videoSel = /** @type {HTMLSelectElement} */ (h('select', { name: 'video' }));
    this.audioSel.addEventListener('change', () => act.device('audio', this.audioSel.value));
    this.videoSel.addEventListener('change', () => act.device('video', this.videoSel.value));
    const devices = h('details', { class: 'devices' }, h('summary', {}, 'Devices'),
      h('label', {}, 'Microphone ', this.audioSel), h('label', {}, 'Camera ', this.videoSel));
    this.controls = h('div', { class: 'controls' }, this.mic, this.cam, this.hang, devices);
    // Browsers refuse play() with sound until the page has had a gesture;
    // the refused video waits for the next one, this button inviting it.
    this.start = btn('Click to start video and sound', 'start', () => this.play());
    const gesture = () => { if (!this.start.hidden) this.play(); };
    addEventListener('pointerdown', gesture, true);
    addEventListener('keydown', gesture, true);
    const stage = h('section', { class: 'stage', 'aria-label': 'Call' },
      this.remote, this.local, h('div', { class: 'overlay' }, this.say, this.start, this.incoming, this.secure, this.stats), this.controls);

    this.nameInput = /** @type {HTMLInputElement} */ (h('input', { name: 'name', maxlength: '40', autocomplete: 'nickname', required: '' }));
    const form = h('form', { class: 'me' }, h('label', {}, 'Your name ', this.nameInput), h('button', { type: 'submit' }, 'Save'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      act.name(this.nameInput.value);
    });
    this.peers = h('ul', { class: 'peers' });
    this.empty = h('p', { class: 'empty' }, 'Nobody else is here yet. Share this page’s address to invite someone.');
    const people = h('aside', { class: 'people', 'aria-label': 'People' },
      h('h2', {}, 'People here'), this.status, this.retry, this.note, this.peers, this.empty, form);
    root.replaceChildren(stage, people);
    this.setCall(null, '', '');
    this.setConn('connecting');
  }

  /** Plays the peer's media, or shows the start button when refused. */
  play() {
    const v = this.remote;
    if (!v.srcObject) {
      this.start.hidden = true;
      return;
    }
    v.play().then(() => { this.start.hidden = true; }, () => { this.start.hidden = !v.srcObject || !v.paused; });
  }

  /** @param {string} state @param {string} [detail] */
  setConn(state, detail) {
    this.root.dataset.conn = state;
    this.status.textContent = CONN_TEXT[state] + (detail && state === 'login failed' ? ': ' + detail : '');
    this.retry.hidden = state !== 'punted';
  }

  /** @param {string} text a standing notice */
  setNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  /** @param {string} name */
  setName(name) {
    this.nameInput.value = name;
  }

  /** @param {PeerItem[]} peers @param {boolean} canCall */
  setPeers(peers, canCall) {
    this.peers.replaceChildren(...peers.map((p) => {
      const b = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'call' }, 'Call'));
      b.disabled = !canCall;
      b.addEventListener('click', () => this.act.call(p.id));
      return h('li', { 'data-peer': p.id }, h('span', { class: 'name' }, p.name), b);
    }));
    this.empty.hidden = peers.length > 0;
  }

  /**
   * @param {{state: string, outgoing: boolean, local: MediaStream|null, remote: MediaStream|null,
   *   micOn: boolean, camOn: boolean, reason: string} | null} call
   * @param {string} peerName @param {string} secure a note on end-to-end encryption
   */
  setCall(call, peerName, secure) {
    const state = call ? call.state : 'idle';
    this.root.dataset.call = state;
    this.root.dataset.direction = call ? (call.outgoing ? 'out' : 'in') : '';
    const say = /** @type {Record<string, string>} */ ({
      calling: 'Calling ' + peerName + '…',
      ringing: peerName + ' is calling you',
      connecting: 'Connecting to ' + peerName + '…',
      'in call': peerName,
      reconnecting: 'Reconnecting to ' + peerName + '…',
      idle: call && call.reason ? call.reason + '. Choose someone to call.' : 'Choose someone to call.',
    });
    this.say.textContent = say[state];
    const live = state !== 'idle';
    this.incoming.hidden = !(state === 'ringing');
    this.controls.hidden = !live || state === 'ringing';
    this.secure.textContent = live && state !== 'ringing' ? secure : '';
    if (!live) this.stats.textContent = '';
    this.mic.textContent = call && !call.micOn ? 'Unmute' : 'Mute';
    this.mic.setAttribute('aria-pressed', String(!!call && !call.micOn));
    this.cam.textContent = call && !call.camOn ? 'Start camera' : 'Stop camera';
    this.cam.setAttribute('aria-pressed', String(!!call && !call.camOn));
    const show = (/** @type {HTMLVideoElement} */ v, /** @type {MediaStream|null} */ s) => {
      const src = live ? s : null;
      if (v.srcObject !== src) v.srcObject = src;
      v.hidden = !src;
    };
    show(this.local, call && call.local);
    show(this.remote, call && call.remote);
    if (this.remote.paused) this.play();
  }

  /** @param {number} bytes received so far @param {number} kbps */
  setStats(bytes, kbps) {
    this.root.dataset.rxBytes = String(bytes);
    this.stats.textContent = '↓ ' + kbps + ' kbit/s';
  }

  /** @param {MediaDeviceInfo[]} list */
  setDevices(list) {
    for (const [sel, kind] of /** @type {const} */ ([[this.audioSel, 'audioinput'], [this.videoSel, 'videoinput']])) {
      const cur = sel.value;
      sel.replaceChildren(...list.filter((d) => d.kind === kind).map((d, i) => {
        const o = /** @type {HTMLOptionElement} */ (h('option', { value: d.deviceId }, d.label || kind + ' ' + (i + 1)));
        return o;
      }));
      if (cur) sel.value = cur;
    }
  }
}

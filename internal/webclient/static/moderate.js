// The managers' tools on the channel page: "Remove" on each person's row,
// which opens a small form in the row to choose for how long (the confirm
// step), and "Lock channel" / "Unlock channel" in the people list. A chunk
// of its own, loaded only for those who manage the channel (config
// `moderate`); like every chunk it imports nothing the page has: the view,
// fetch and what to do after a change are handed in (see the README).
// Peer text only via textContent.

/**
 * @typedef {{
 *   mod: import('./view.js').ModHook | null, locked: HTMLElement, warn: (text: string) => void,
 *   rows: Map<string, HTMLElement>,
 * }} ModView the part of the view used here: its hook, the locked note
 *   (hidden while unlocked; the lock button goes after it), its warnings
 *   and the people list's rows by peer id (each row's first child the name)
 * @typedef {{
 *   channelId: string, view: ModView, fetch: typeof fetch,
 *   apply: (s: import('./controller.js').Moderation) => void,
 *   broadcast: (m: {t: 'mod'}) => Promise<any>, log: {warn: (...a: any[]) => void},
 * }} ModerateOptions apply: applies a change the server made, here at
 *   once; broadcast: sends the other pages the hint to fetch it
 */

/** How long a removed person stays out: the form's choices (minutes), 1 hour first chosen. */
const FOR = [['15', '15 minutes'], ['60', '1 hour'], ['1440', '1 day'], ['10080', '1 week']];
const CHOSEN = '60';

/**
 * Makes an element; strings among the children become text.
 * @param {string} tag @param {Record<string, string>} attrs @param {...(Node|string)} kids
 */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...kids);
  return e;
}

/**
 * Adds the managers' tools to the view.
 * @param {ModerateOptions} o
 */
export function moderate(o) {
  const { view } = o;
  const base = '/c/' + encodeURIComponent(o.channelId) + '/';
  /** A change the server made: here at once, and the other pages hear of it. @param {import('./controller.js').Moderation} s */
  const done = (s) => {
    o.apply(s);
    o.broadcast({ t: 'mod' }).catch((e) => o.log.warn('channels: moderation hint:', e));
  };

  /**
   * POSTs a form (same origin: the session cookie goes with it, and the
   * browser's Sec-Fetch-Site and Origin satisfy the server's cross-origin
   * check); resolves with the JSON answer, rejects with the server's words.
   * @param {string} what @param {Record<string, string>} form @returns {Promise<any>}
   */
  async function post(what, form) {
    // Called unbound: fetch called as a method of another object throws.
    const get = o.fetch, r = await get(base + what, { method: 'POST', body: new URLSearchParams(form) });
    const j = await r.json().catch(() => null);
    if (!r.ok) throw new Error(j?.error || 'HTTP ' + r.status);
    return j;
  }

  const lock = el('button', { type: 'button', class: 'lock' });
  /** @param {boolean} on */
  const showLock = (on) => { lock.textContent = on ? 'Unlock channel' : 'Lock channel'; };
  showLock(!view.locked.hidden);
  let locking = false;
  lock.addEventListener('click', () => {
    if (locking) return;
    locking = true;
    const on = view.locked.hidden; // unlocked now: lock
    post('lock', { locked: on ? '1' : '0' }).then(
      (r) => done({ locked: !!r?.locked }),
      (e) => view.warn('Could not ' + (on ? 'lock' : 'unlock') + ' the channel: ' + e.message),
    ).finally(() => { locking = false; });
  });
  view.locked.after(lock);

  /** @type {WeakMap<HTMLElement, {b: HTMLElement, name: string}>} each row's Remove button and person's name */
  const rows = new WeakMap();

  view.mod = {
    lock: showLock,
    row(li, p) {
      let r = rows.get(li);
      if (!r) {
        const b = el('button', { type: 'button', class: 'remove' }, 'Remove');
        rows.set(li, r = { b, name: p.name });
        b.addEventListener('click', () => ask(li, p.id, /** @type {{b: HTMLElement, name: string}} */ (r)));
        li.append(b);
      }
      r.name = p.name;
      // The button's name says whom it removes.
      r.b.setAttribute('aria-label', 'Remove ' + p.name);
    },
  };
  // The rows the view made before this loaded; the hook sees the rest.
  for (const [id, li] of view.rows) view.mod.row(li, { id, name: li.children[0].textContent || '' });

  /**
   * The confirm step: a form in the row choosing for how long, its
   * choice taking the focus; Cancel (or Escape) closes it and gives the
   * focus back to Remove.
   * @param {HTMLElement} li @param {string} id @param {{b: HTMLElement, name: string}} r
   */
  function ask(li, id, r) {
    if (r.b.hidden) return; // open already
    const sel = /** @type {HTMLSelectElement} */ (el('select', { name: 'minutes' },
      ...FOR.map(([v, text]) => el('option', v === CHOSEN ? { value: v, selected: '' } : { value: v }, text))));
    const cancel = el('button', { type: 'button', class: 'cancel' }, 'Cancel');
    const form = el('form', { class: 'remove-form' },
      el('label', {}, 'Remove ' + r.name + ' for ', sel), el('button', { type: 'submit' }, 'Remove'), cancel);
    const close = () => {
      form.remove();
      r.b.hidden = false;
      r.b.focus();
    };
    cancel.addEventListener('click', close);
    form.addEventListener('keydown', (e) => {
      if (/** @type {KeyboardEvent} */ (e).key === 'Escape') close();
    });
    let busy = false;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (busy) return;
      busy = true;
      post('remove', { client: id, minutes: sel.value }).then(() => {
        // The row goes with the person: the focus stays in the people list.
        lock.focus();
        done({ removed: [id], locked: !view.locked.hidden });
      }, (e) => view.warn('Could not remove ' + r.name + ': ' + e.message)).finally(() => { busy = false; });
    });
    // While the form is open it stands for the button.
    r.b.hidden = true;
    li.append(form);
    sel.focus();
  }
}

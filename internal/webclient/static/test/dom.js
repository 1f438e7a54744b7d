// A small DOM for the view's tests (not a test file itself): elements with
// attributes, children, text and click listeners, and keyboard focus kept
// as browsers keep it: an element that leaves the document, even to be put
// back elsewhere at once (insertBefore of an attached node), or that
// becomes disabled (Chrome), loses the focus to the body. Nothing parses
// HTML: text set with innerHTML would never show in textContent. dataset
// reflects the data-* attributes, as in browsers; videos play when the
// document allows it (doc.canPlay) and refuse as browsers do without a
// gesture otherwise.

class FakeNode {
  /** @param {FakeDocument} doc */
  constructor(doc) {
    this.ownerDocument = doc;
    /** @type {FakeElement | null} */
    this.parentNode = null;
    /** @type {FakeNode[]} */
    this.childNodes = [];
  }

  get textContent() { return this.childNodes.map((n) => n.textContent).join(''); }
  set textContent(v) { this.replaceChildren(String(v)); }
  get firstChild() { return this.childNodes[0] ?? null; }
  get nextSibling() {
    const p = this.parentNode;
    return p ? p.childNodes[p.childNodes.indexOf(this) + 1] ?? null : null;
  }
  get isConnected() { return this.ownerDocument.documentElement.contains(this); }

  /** @param {FakeNode | null} n */
  contains(n) {
    for (; n; n = n.parentNode) if (n === this) return true;
    return false;
  }

  /** @param {FakeNode | string} n */
  wrap(n) { return typeof n === 'string' ? new FakeText(this.ownerDocument, n) : n; }

  /** @param {FakeNode | string} node @param {FakeNode | null} ref */
  insertBefore(node, ref) {
    const n = this.wrap(node);
    n.remove();
    const i = ref ? this.childNodes.indexOf(ref) : -1;
    if (ref && i < 0) throw new Error('insertBefore: ref is not a child');
    this.childNodes.splice(i < 0 ? this.childNodes.length : i, 0, n);
    n.parentNode = /** @type {any} */ (this);
    return n;
  }

  /** @param {...(FakeNode | string)} nodes */
  append(...nodes) { for (const n of nodes) this.insertBefore(n, null); }

  /** @param {...(FakeNode | string)} nodes */
  replaceChildren(...nodes) {
    for (const c of [...this.childNodes]) c.remove();
    this.append(...nodes);
  }

  /** Puts node right after this one. @param {FakeNode} node */
  after(node) {
    const p = /** @type {any} */ (this.parentNode);
    p.insertBefore(node, p.childNodes[p.childNodes.indexOf(this) + 1] || null);
  }

  /** Leaves its parent; the focus leaves with it, as in browsers. */
  remove() {
    const p = this.parentNode;
    if (!p) return;
    const doc = this.ownerDocument;
    if (this.contains(doc.activeElement) && this.isConnected) doc.blurTo(doc.body);
    p.childNodes.splice(p.childNodes.indexOf(this), 1);
    this.parentNode = null;
  }
}

class FakeText extends FakeNode {
  /** @param {FakeDocument} doc @param {string} data */
  constructor(doc, data) {
    super(doc);
    this.data = data;
  }
  get textContent() { return this.data; }
  set textContent(v) { this.data = String(v); }
}

const FOCUSABLE = new Set(['BUTTON', 'INPUT', 'SELECT', 'TEXTAREA', 'A', 'BODY']);

export class FakeElement extends FakeNode {
  /** @param {FakeDocument} doc @param {string} tag */
  constructor(doc, tag) {
    super(doc);
    this.tagName = tag.toUpperCase();
    /** @type {Map<string, string>} */
    this.attributes = new Map();
    /** @type {Record<string, string>} data-fooBar is data-foo-bar, as in browsers */
    this.dataset = new Proxy({}, {
      get: (_, k) => this.attributes.get(dataName(k)),
      set: (_, k, v) => { this.setAttribute(dataName(k), v); return true; },
      deleteProperty: (_, k) => { this.removeAttribute(dataName(k)); return true; },
      has: (_, k) => this.attributes.has(dataName(k)),
    });
    this._disabled = false;
    /** @type {Map<string, Set<(e: any) => void>>} */
    this.listeners = new Map();
    /** @type {string[]} focus and blur, as they happened */
    this.focusLog = [];
  }

  get children() { return /** @type {FakeElement[]} */ (this.childNodes.filter((n) => n instanceof FakeElement)); }
  get childElementCount() { return this.children.length; }
  get firstElementChild() { return this.children[0] ?? null; }

  /** Reflects the hidden attribute, as in browsers. */
  get hidden() { return this.hasAttribute('hidden'); }
  set hidden(v) { this.toggleAttribute('hidden', !!v); }

  get disabled() { return this._disabled; }
  set disabled(v) {
    this._disabled = !!v;
    if (v && this.ownerDocument.activeElement === this) this.ownerDocument.blurTo(this.ownerDocument.body);
  }

  /** @param {string} k @param {any} v */
  setAttribute(k, v) { this.attributes.set(k, String(v)); }
  /** @param {string} k */
  getAttribute(k) { return this.attributes.get(k) ?? null; }
  /** @param {string} k */
  hasAttribute(k) { return this.attributes.has(k); }
  /** @param {string} k */
  removeAttribute(k) { this.attributes.delete(k); }
  /** @param {string} k @param {boolean} [on] */
  toggleAttribute(k, on = !this.hasAttribute(k)) {
    if (on) this.setAttribute(k, '');
    else this.removeAttribute(k);
    return on;
  }

  /** @param {string} t @param {(e: any) => void} f */
  addEventListener(t, f) { this.listeners.set(t, (this.listeners.get(t) || new Set()).add(f)); }
  /** @param {string} t @param {(e: any) => void} f */
  removeEventListener(t, f) { this.listeners.get(t)?.delete(f); }
  /**
   * Fires an event of type at this element, bubbling up through its
   * ancestors as focusin and submit do; returns the event, whose
   * defaultPrevented says whether a listener prevented the default.
   * @param {string} type @param {Record<string, any>} [props]
   */
  fire(type, props = {}) {
    const e = { type, target: this, defaultPrevented: false, preventDefault() { e.defaultPrevented = true; }, ...props };
    for (/** @type {FakeNode | null} */ let n = this; n; n = n.parentNode) {
      if (n instanceof FakeElement) for (const f of n.listeners.get(type) || []) f(e);
    }
    return e;
  }

  /** A click, as a person makes it: disabled buttons take none. */
  click() {
    if (this._disabled) return;
    for (const f of this.listeners.get('click') || []) f({ type: 'click', target: this, preventDefault() {} });
  }

  /** Takes the focus, if it can hold it (attached, focusable, enabled). */
  focus() {
    const doc = this.ownerDocument;
    if (doc.activeElement === this || this._disabled || !this.isConnected) return;
    if (!FOCUSABLE.has(this.tagName) && !this.hasAttribute('tabindex')) return;
    doc.blurTo(this);
  }

  /** Every element under this one, in document order. @returns {Generator<FakeElement>} */
  *all() {
    for (const c of this.children) {
      yield c;
      yield* c.all();
    }
  }
}

/** @param {string | symbol} k a dataset key */
function dataName(k) {
  return 'data-' + String(k).replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** A select: its value is its selected option's (the first's if none is), as in browsers. */
export class FakeSelect extends FakeElement {
  /** @param {FakeDocument} doc */
  constructor(doc) { super(doc, 'select'); }
  get options() { return this.children.filter((e) => e.tagName === 'OPTION'); }
  get value() {
    const o = this.options.find((e) => e.hasAttribute('selected')) || this.options[0];
    return o ? o.getAttribute('value') ?? o.textContent : '';
  }
  /** Chooses the option with value v, as a person would. @param {string} v */
  set value(v) {
    for (const o of this.options) o.toggleAttribute('selected', o.getAttribute('value') === v);
  }
}

/** A video: srcObject, paused, play() as the document allows, pause() with its event. */
export class FakeVideo extends FakeElement {
  /** @param {FakeDocument} doc */
  constructor(doc) {
    super(doc, 'video');
    /** @type {any} */
    this.src = null;
    /** how often srcObject was set: each time reloads the media, in browsers */
    this.srcSets = 0;
    this.paused = true;
    this.muted = false;
    this.plays = 0;
  }

  get srcObject() { return this.src; }
  set srcObject(v) {
    this.srcSets++;
    this.src = v;
    this.paused = true;
  }

  play() {
    this.plays++;
    if (!this.ownerDocument.canPlay) return Promise.reject(Object.assign(new Error('play() needs a gesture'), { name: 'NotAllowedError' }));
    this.paused = false;
    return Promise.resolve();
  }

  pause() {
    if (this.paused) return;
    this.paused = true;
    for (const f of this.listeners.get('pause') || []) f({ type: 'pause', target: this });
  }
}

export class FakeDocument {
  constructor() {
    this.documentElement = new FakeElement(this, 'html');
    this.body = new FakeElement(this, 'body');
    this.documentElement.append(this.body);
    /** @type {FakeElement} */
    this.activeElement = this.body;
    this.title = '';
    this.hidden = false;
    /** whether media may play (a gesture was made, or autoplay is allowed) */
    this.canPlay = true;
  }

  /** @param {string} tag */
  createElement(tag) { return tag === 'video' ? new FakeVideo(this) : tag === 'select' ? new FakeSelect(this) : new FakeElement(this, tag); }

  /** Moves the focus, logging blur and focus on the elements. @param {FakeElement} to */
  blurTo(to) {
    this.activeElement.focusLog.push('blur');
    this.activeElement = to;
    to.focusLog.push('focus');
  }
}

/**
 * Installs a fresh document (and the window's listeners the view adds) as
 * globals for the duration of one test; returns the document and an
 * element in its body to hold a view.
 * @param {{after: (f: () => void) => void}} t the test context
 */
export function installDom(t) {
  const g = /** @type {any} */ (globalThis);
  const saved = { document: g.document, addEventListener: g.addEventListener };
  const doc = new FakeDocument();
  g.document = doc;
  g.addEventListener = () => {};
  t.after(() => Object.assign(g, saved));
  const root = doc.createElement('div');
  doc.body.append(root);
  return { doc, root };
}

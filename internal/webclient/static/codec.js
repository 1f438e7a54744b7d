// Message bodies on the wire: base64 of UTF-8 JSON (so no relay can mangle
// them, and they never contain '|'), optionally sealed end to end with
// ECDH (P-256) + AES-GCM. No DOM here: Node's test runner imports it.

/** @param {Uint8Array} bytes @returns {string} */
export function toBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, /** @type {any} */ (bytes.subarray(i, i + 0x8000)));
  }
  return btoa(s);
}

/** @param {string} b64 @returns {Uint8Array<ArrayBuffer>} */
export function fromBase64(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Encodes any JSON value as base64 of its UTF-8 JSON text.
 * @param {any} value @returns {string} */
export function encodeBody(value) {
  return toBase64(new TextEncoder().encode(JSON.stringify(value)));
}

/** Decodes what encodeBody made; throws on anything else.
 * @param {string} body @returns {any} */
export function decodeBody(body) {
  if (typeof body !== 'string') throw new TypeError('body is not a string');
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(fromBase64(body)));
}

/** The bare client id of a Verto user id ("id@domain" → "id").
 * @param {string} userid @returns {string} */
export function bareId(userid) {
  const i = String(userid).indexOf('@');
  return i < 0 ? String(userid) : String(userid).slice(0, i);
}

/** A fresh random id, 16 hex digits (also on plain http, unlike randomUUID). */
export function randomId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
}

const ECDH = { name: 'ECDH', namedCurve: 'P-256' };
/** The most keys agreed with peers kept at once (the least recently used go). */
export const KEYS_KEPT = 256;

/** True when this context offers Web Crypto (browsers: secure contexts only). */
export function cryptoAvailable() {
  return !!(globalThis.crypto && globalThis.crypto.subtle);
}

/**
 * A key pair for this page and the AES-GCM keys agreed with peers.
 * Sealed envelopes are {iv, ct}; the additional data binds sender and
 * recipient ids, so a sealed message cannot be replayed as another's.
 */
export class Sealer {
  /** @param {CryptoKeyPair} pair @param {string} pub */
  constructor(pair, pub) {
    this.pair = pair;
    /** Our public key, raw, base64. */
    this.pub = pub;
    /** @type {Map<string, Promise<CryptoKey>>} by peer key, least recently used first */
    this.keys = new Map();
  }

  /** @returns {Promise<Sealer>} */
  static async create() {
    const pair = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey(ECDH, false, ['deriveKey']));
    const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    return new Sealer(pair, toBase64(raw));
  }

  /**
   * The key agreed with a peer's public key, kept for the next message;
   * a peer announcing new keys without end only makes others be derived
   * again. @param {string} peerPub @returns {Promise<CryptoKey>}
   */
  key(peerPub) {
    const keys = this.keys;
    let k = keys.get(peerPub);
    if (k) keys.delete(peerPub);
    else {
      k = crypto.subtle.importKey('raw', fromBase64(peerPub), ECDH, false, [])
        .then((pk) => crypto.subtle.deriveKey({ name: 'ECDH', public: pk }, this.pair.privateKey,
          { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']));
    }
    if (keys.set(peerPub, k).size > KEYS_KEPT) keys.delete(/** @type {string} */ (keys.keys().next().value));
    return k;
  }

  /** @param {string} peerPub @param {any} value @param {string} aad @returns {Promise<{iv: string, ct: string}>} */
  async seal(peerPub, value, aad) {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(aad) },
      await this.key(peerPub), new TextEncoder().encode(JSON.stringify(value)));
    return { iv: toBase64(iv), ct: toBase64(new Uint8Array(ct)) };
  }

  /** @param {string} peerPub @param {{iv: string, ct: string}} env @param {string} aad @returns {Promise<any>} */
  async open(peerPub, env, aad) {
    const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64(env.iv), additionalData: new TextEncoder().encode(aad) },
      await this.key(peerPub), fromBase64(env.ct));
    return JSON.parse(new TextDecoder().decode(pt));
  }
}

/** A short code both peers can compare to check their keys (same on both sides).
 * @param {string} a @param {string} b @returns {Promise<string>} */
export async function safetyCode(a, b) {
  const [x, y] = [a, b].sort();
  const h = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(x + ':' + y)));
  return Array.from(h.subarray(0, 6), (n) => String(n % 100).padStart(2, '0')).join(' ');
}

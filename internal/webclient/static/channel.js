// Entry point of the channel page: reads the page's configuration, builds
// the parts and starts them; controller.js routes between them.

import { Verto, keptSessid } from './verto.js';
import { Presence } from './presence.js';
import { Sealer, cryptoAvailable } from './codec.js';
import { View, Ringer } from './view.js';
import { IceServers } from './ice.js';
import { controller } from './controller.js';

/**
 * @typedef {{channelId: string, clientId: string, password: string, vertoUrl: string,
 *   domain: string, topic: string, maxCall?: number,
 *   moderate?: boolean, locked?: boolean, removed?: string[], modUrl?: string} & import('./ice.js').IceConfig} ChannelConfig
 */

const NAME_KEY = 'channels.name';
const SESSID_KEY = 'channels.sessid.';

/** localStorage and sessionStorage, or null where they are off. */
const [ls, ss] = [() => localStorage, () => sessionStorage].map((f) => {
  try { return f(); } catch { return null; }
});

/** @param {string} k @param {string} v */
function save(k, v) {
  try { ls?.setItem(k, v); } catch { /* full, or off: the value lasts this page */ }
}

function main() {
  const root = document.getElementById('channel-app');
  const cfgEl = document.getElementById('channel-config');
  if (!root || !cfgEl) return;
  /** @type {ChannelConfig} */
  const cfg = JSON.parse(cfgEl.textContent || '{}');
  const key = SESSID_KEY + cfg.channelId;
  const chat = document.getElementById('chat');
  controller({
    // channelId, maxCall and the moderation state (modUrl, removed, locked, moderate)
    ...cfg,
    self: cfg.clientId,
    name: ls?.getItem(NAME_KEY) ?? null,
    saveName: (n) => save(NAME_KEY, n),
    presence: new Presence(cfg.clientId),
    ice: new IceServers(cfg),
    keys: cryptoAvailable() ? Sealer.create() : Promise.resolve(null),
    ringer: new Ringer(),
    md: navigator.mediaDevices,
    AC: globalThis.AudioContext,
    win: globalThis,
    view: (act) => new View(root, act, chat),
    chat: {
      section: /** @type {HTMLElement} */ (chat), subtle: crypto.subtle, storage: ss, win: globalThis,
      random: (n) => crypto.getRandomValues(new Uint8Array(n)),
    },
    verto: (h) => new Verto({
      // Absolute as configured, or relative to this page; http(s) becomes ws(s).
      url: new URL(cfg.vertoUrl || '/verto', location.href).href.replace(/^http/, 'ws'),
      login: cfg.clientId,
      passwd: cfg.password,
      sessid: keptSessid(ls, key),
      onSessid: (s) => save(key, s),
      ...h,
    }),
  }).start();
}

main();

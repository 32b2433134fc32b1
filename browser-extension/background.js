// Registers the content scripts on the HIS pages the hospital configured (options page or policy),
// again whenever the configuration changes. Serialised: two registrations must not race.
import { loadConfig, problems } from './lib/config.js';

const IDS = ['dip-cds-bridge', 'dip-cds-content'];
let queue = Promise.resolve();

async function register() {
  const cfg = await loadConfig();
  const registered = await chrome.scripting.getRegisteredContentScripts({ ids: IDS });
  if (registered.length) await chrome.scripting.unregisterContentScripts({ ids: registered.map((s) => s.id) });
  if (problems(cfg).length) return; // not configured yet: inject nothing anywhere
  await chrome.scripting.registerContentScripts([
    // allFrames: many B/S workstations put the order form in an iframe; the patterns name that frame's page
    { id: IDS[0], matches: cfg.pages, js: ['page-bridge.js'], runAt: 'document_start', world: 'MAIN', allFrames: true, persistAcrossSessions: true },
    { id: IDS[1], matches: cfg.pages, js: ['content.js'], runAt: 'document_idle', allFrames: true, persistAcrossSessions: true },
  ]);
}

function schedule() {
  queue = queue.then(register).catch((err) => console.warn('DIP-CDS: content scripts not registered:', err.message));
  return queue;
}

chrome.runtime.onInstalled.addListener(schedule);
chrome.runtime.onStartup.addListener(schedule);
chrome.storage.onChanged.addListener(schedule);
chrome.runtime.onMessage.addListener((msg, _sender, reply) => {
  if (msg && msg.type === 'dip-cds:registered') {
    schedule().then(() => chrome.scripting.getRegisteredContentScripts({ ids: IDS })).then((s) => reply(s.map((x) => x.id)));
    return true;
  }
  return false;
});

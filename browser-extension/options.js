import { DEFAULTS, KEYS, loadConfig, loadLocal, loadManaged, merge, problems } from './lib/config.js';

const form = document.getElementById('options');
const result = document.getElementById('result');
const SOURCES = ['patientId', 'encounterId', 'userId', 'draftOrders'];
const FROM = { selector: 'CSS 选择器', global: 'JS 全局变量', xhr: '页面接口返回' };

for (const div of document.querySelectorAll('.source')) {
  const key = div.dataset.key;
  const label = div.querySelector('span').textContent;
  const from = document.createElement('select');
  from.name = `${key}.from`;
  from.setAttribute('aria-label', `${label}：读取方式`);
  for (const [value, text] of Object.entries(FROM)) from.append(new Option(text, value));
  const value = Object.assign(document.createElement('input'), { name: `${key}.value`, placeholder: '选择器 / 变量路径 / 接口地址片段' });
  value.setAttribute('aria-label', `${label}：选择器、变量或接口地址`);
  const path = Object.assign(document.createElement('input'), { name: `${key}.path`, placeholder: '返回 JSON 中的路径（接口方式）' });
  path.setAttribute('aria-label', `${label}：返回 JSON 中的路径`);
  div.append(from, value, path);
}

function show(text, kind) {
  result.textContent = text;
  result.className = kind;
}

function fill(cfg) {
  form.serviceUrl.value = cfg.serviceUrl;
  form.pages.value = cfg.pages.join('\n');
  form.signButton.value = cfg.signButton;
  form.hook.value = cfg.hook;
  form.fhirServer.value = cfg.fhirServer;
  form.tokenUrl.value = cfg.tokenUrl;
  form.orderFields.value = JSON.stringify(cfg.orderFields);
  for (const key of SOURCES) {
    form[`${key}.from`].value = cfg[key].from || 'selector';
    form[`${key}.value`].value = cfg[key].value || '';
    form[`${key}.path`].value = cfg[key].path || '';
  }
  for (const key of cfg.managed || []) {
    for (const el of form.querySelectorAll(`[name="${key}"], [name^="${key}."]`)) el.disabled = true;
  }
  document.getElementById('managed-note').hidden = !(cfg.managed || []).length;
}

function collect() {
  const cfg = {
    serviceUrl: form.serviceUrl.value.trim(),
    pages: form.pages.value.split('\n').map((s) => s.trim()).filter(Boolean),
    signButton: form.signButton.value.trim(),
    hook: form.hook.value,
    fhirServer: form.fhirServer.value.trim(),
    tokenUrl: form.tokenUrl.value.trim(),
    orderFields: JSON.parse(form.orderFields.value || '{}'),
  };
  for (const key of SOURCES) {
    cfg[key] = { from: form[`${key}.from`].value, value: form[`${key}.value`].value.trim() };
    const path = form[`${key}.path`].value.trim();
    if (path) cfg[key].path = path;
  }
  return cfg;
}

async function save(cfg) {
  const bad = problems({ ...DEFAULTS, ...cfg });
  if (bad.length) return show(bad.join('\n'), 'error');
  await chrome.storage.local.set({ config: Object.fromEntries(KEYS.filter((k) => k in cfg).map((k) => [k, cfg[k]])) });
  const ids = await chrome.runtime.sendMessage({ type: 'dip-cds:registered' });
  show(ids && ids.length ? '已保存，刷新 HIS 页面后生效' : '已保存，但未能在 HIS 页面启用（请检查页面地址模式）', ids && ids.length ? 'ok' : 'error');
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  try {
    save(collect());
  } catch {
    show('医嘱行字段必须是 JSON，例如 {"code": "@data-code"}', 'error');
  }
});

document.getElementById('test').addEventListener('click', async () => {
  try {
    const resp = await fetch(new URL('healthz', form.serviceUrl.value.trim().replace(/\/?$/, '/')), { cache: 'no-store' });
    show(resp.ok ? '服务连接正常' : `服务返回 HTTP ${resp.status}`, resp.ok ? 'ok' : 'error');
  } catch {
    show('无法连接服务，请检查地址与网络', 'error');
  }
});

document.getElementById('export').addEventListener('click', async () => {
  const { managed, ...cfg } = await loadConfig();
  document.getElementById('json').value = JSON.stringify(cfg, null, 2);
});

document.getElementById('import').addEventListener('click', async () => {
  try {
    const cfg = JSON.parse(document.getElementById('json').value);
    await save(cfg);
    fill(await loadConfig());
  } catch {
    show('配置 JSON 格式不正确', 'error');
  }
});

// The saved options at once; policy values (which may arrive seconds after the browser starts) then
// replace and lock theirs.
loadLocal().then(async (local) => {
  fill(merge(local));
  document.body.dataset.ready = 'true';
  const managed = await loadManaged();
  if (Object.keys(managed).length) fill(merge(local, managed));
});

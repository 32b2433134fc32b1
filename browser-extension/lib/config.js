// Configuration of the extension: defaults, the hospital's saved options, and policy (managed)
// values, which win and cannot be changed on the options page. Also the readers that turn a
// configured source (CSS selector, JS global, the page's own XHR/fetch answers) into a value.

export const DEFAULTS = {
  serviceUrl: '',
  pages: [],
  signButton: '',
  hook: 'order-sign',
  patientId: { from: 'selector', value: '' },
  encounterId: { from: 'selector', value: '' },
  userId: { from: 'selector', value: '' },
  userPrefix: 'Practitioner/',
  draftOrders: { from: 'global', value: '' },
  orderFields: { code: '@data-code', name: '@data-name', system: '@data-system', quantity: '@data-qty', kind: '@data-kind' },
  fhirServer: '',
  tokenUrl: '',
};
export const KEYS = Object.keys(DEFAULTS);
const PATTERN = /^(https?|\*):\/\/(\*|\*\.[^/*]+|[^/*]+)(:\d+|:\*)?\/.*$/;

export const loadLocal = () => chrome.storage.local.get('config').then((r) => r.config || {});
// Policy values (Chromium may take a moment after start to load policies); none: an empty object.
export const loadManaged = () => chrome.storage.managed.get(null).catch(() => ({}));

export function merge(local, managed = {}) {
  return { ...DEFAULTS, ...local, ...managed, managed: Object.keys(managed).filter((k) => KEYS.includes(k)) };
}

export async function loadConfig() {
  const [local, managed] = await Promise.all([loadLocal(), loadManaged()]);
  return merge(local, managed);
}

// Problems of a configuration, in Chinese, one per setting (empty = valid).
export function problems(cfg) {
  const out = [];
  try {
    const u = new URL(cfg.serviceUrl);
    if (!['http:', 'https:'].includes(u.protocol)) throw new Error();
  } catch {
    out.push('服务地址必须是 http(s) 地址，例如 https://cds.hospital.cn/');
  }
  if (!cfg.pages.length) out.push('请至少填写一个 HIS 页面地址模式');
  for (const p of cfg.pages) if (!PATTERN.test(p)) out.push(`页面地址模式无效：${p}（例如 https://his.hospital.cn/doctor/*）`);
  if (!cfg.signButton) out.push('请填写“签署”按钮的 CSS 选择器');
  for (const key of ['patientId', 'draftOrders']) if (!cfg[key].value) out.push(`请配置${key === 'patientId' ? '患者编号' : '待签医嘱'}的读取方式`);
  return out;
}

export function pathGet(root, path) {
  let v = root;
  for (const part of String(path || '').split('.').filter(Boolean)) {
    if (v === null || v === undefined) return undefined;
    v = v[part];
  }
  return v;
}

// Draft orders as FHIR resources: the page may give FHIR already, or plain rows {code, name, system, quantity, kind}.
export function ordersToFhir(rows, ctx) {
  const subject = { reference: `Patient/${ctx.patientId}` };
  const encounter = ctx.encounterId ? { reference: `Encounter/${ctx.encounterId}` } : undefined;
  return (Array.isArray(rows) ? rows : []).map((row, i) => {
    if (row && row.resourceType) return row;
    const coding = [{ system: row.system || undefined, code: String(row.code || ''), display: row.name || undefined }];
    const qty = Number(row.quantity) || 1;
    const base = { id: `ext-draft-${i + 1}`, status: 'draft', intent: 'order', subject, encounter };
    if (/drug|药/.test(String(row.kind || ''))) {
      return { resourceType: 'MedicationRequest', ...base, medicationCodeableConcept: { coding, text: row.name }, dispenseRequest: { quantity: { value: qty } } };
    }
    return { resourceType: 'ServiceRequest', ...base, code: { coding, text: row.name }, quantityQuantity: { value: qty } };
  });
}

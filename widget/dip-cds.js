// DIP-CDS 医保智能提醒 panel: a framework-free ES module (no build step, no dependencies).
//   <script type="module" src="https://cds.hospital.cn/plugin/dip-cds.js"></script>
//   <dip-cds-panel></dip-cds-panel>            (optional: DipCds.check() creates one)
//   DipCds.check({hook: 'order-sign', patientId, encounterId, userId, draftOrders})
// It talks only to the service it was loaded from (or the `service` option) and, when an
// `applyUrl` is configured, posts accepted suggestions there as a FHIR transaction. Card details arrive as HTML the service has
// already sanitised; every other value is inserted as text. No inline script, no eval, no inline
// style attributes: it runs under a strict Content-Security-Policy.

const VERSION = '1.0.0';
const STORE_KEY = 'dip-cds-panel:v1';
const LEVELS = { critical: ['严重', 0], warning: ['警告', 1], info: ['提示', 2] };
const ORDER_HOOKS = ['order-sign', 'order-select'];
const TIMEOUT_MS = 10000;
const STEP = 16;
const MODULE_URL = import.meta.url;

export function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs a secure context; HIS pages often are not
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// The CDS Hooks request for a check; `draftOrders` may be a Bundle or a list of FHIR resources.
export function buildRequest(r) {
  if (r.request) return r.request;
  if (r.payload3101) return r.payload3101;
  const hook = r.hook || 'order-sign';
  const context = { userId: r.userId, patientId: r.patientId };
  if (r.encounterId) context.encounterId = r.encounterId;
  if (ORDER_HOOKS.includes(hook)) {
    const orders = r.draftOrders || [];
    context.draftOrders = Array.isArray(orders)
      ? { resourceType: 'Bundle', type: 'collection', entry: orders.map((resource) => ({ resource })) }
      : orders;
    if (r.selections) context.selections = r.selections;
  }
  const body = { hook, hookInstance: r.hookInstance || uuid4(), context };
  for (const key of ['fhirServer', 'fhirAuthorization', 'prefetch', 'extension']) if (r[key]) body[key] = r[key];
  return body;
}

// FHIR transaction applying one suggestion's actions (CDS Hooks: one suggestion = one transaction).
export function transactionFor(actions) {
  const entry = (actions || []).map((a) => {
    const res = a.resource || {};
    if (a.type === 'create') return { resource: res, request: { method: 'POST', url: res.resourceType } };
    if (a.type === 'update') return { resource: res, request: { method: 'PUT', url: `${res.resourceType}/${res.id}` } };
    return { request: { method: 'DELETE', url: a.resourceId } };
  });
  return { resourceType: 'Bundle', type: 'transaction', entry };
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

let sheet; // one constructed stylesheet shared by every panel on the page
function styles() {
  sheet ??= fetch(new URL('dip-cds.css', MODULE_URL), { credentials: 'omit' })
    .then((r) => (r.ok ? r.text() : ''))
    .then((css) => {
      const s = new CSSStyleSheet();
      s.replaceSync(css);
      return s;
    });
  return sheet;
}

function httpUrl(value) {
  try {
    const u = new URL(value);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

function problemText(body, status) {
  const issues = body && Array.isArray(body.issue) ? body.issue.map((i) => i.diagnostics).filter(Boolean) : [];
  return issues.length ? issues.join('；') : `HTTP ${status}`;
}

// The panel: renders into a shadow root on any host element (the custom element, or a plain host
// the browser extension creates: content scripts have no custom element registry).
export class Panel {
  constructor(host, options = {}) {
    this.host = host;
    this.opts = { ...options };
    this.cards = [];
    this.token = null;
    this.seq = 0;
    this.state = this.#load();
    const root = host.shadowRoot || host.attachShadow({ mode: 'open' });
    this.root = root;
    for (const [k, v] of [['position', 'fixed'], ['z-index', '2147483000'], ['visibility', 'hidden'], ['contain', 'layout style']]) {
      host.style.setProperty(k, v, 'important');
    }
    this.#build();
    const show = () => {
      host.style.setProperty('visibility', 'visible', 'important');
      this.#place(this.state.x, this.state.y);
    };
    styles().then((s) => {
      root.adoptedStyleSheets = [s];
      show();
    }, show);
    this.onKey = (e) => {
      if (this.opts.hotkey !== 'off' && e.altKey && e.shiftKey && e.code === 'KeyY') {
        e.preventDefault();
        this.setCollapsed(false);
        this.toggleBtn.focus();
      }
    };
    document.addEventListener('keydown', this.onKey);
    this.onResize = () => this.#place(this.state.x, this.state.y);
    addEventListener('resize', this.onResize);
  }

  // The service root: the `service` option, else where this script was loaded from (…/plugin/dip-cds.js).
  get base() {
    return new URL(this.opts.service || new URL('..', MODULE_URL).href, location.href).href.replace(/\/?$/, '/');
  }

  configure(options) {
    Object.assign(this.opts, options);
    if ('token' in options) this.token = options.token ? { value: options.token, until: Infinity } : null;
    this.titleEl.textContent = this.opts.title || '医保智能提醒';
    return this;
  }

  destroy() {
    document.removeEventListener('keydown', this.onKey);
    removeEventListener('resize', this.onResize);
  }

  // ---------------------------------------------------------------- layout, dragging, memory

  #load() {
    try {
      return { collapsed: false, ...JSON.parse(localStorage.getItem(STORE_KEY) || '{}') };
    } catch {
      return { collapsed: false };
    }
  }

  #save() {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(this.state));
    } catch {
      /* storage disabled: the panel still works, it just forgets */
    }
  }

  #place(x, y) {
    const w = this.panel.offsetWidth || 360;
    const h = this.bar.offsetHeight || 40;
    const left = Math.min(Math.max(0, x ?? innerWidth - w - 16), Math.max(0, innerWidth - w));
    const top = Math.min(Math.max(0, y ?? 72), Math.max(0, innerHeight - h));
    this.host.style.setProperty('left', `${left}px`, 'important');
    this.host.style.setProperty('top', `${top}px`, 'important');
    return [left, top];
  }

  #moveTo(x, y, save) {
    [this.state.x, this.state.y] = this.#place(x, y);
    if (save) this.#save();
  }

  #drag(e) {
    if (e.button !== 0 || e.target.closest('button:not(.grip)')) return;
    const start = this.host.getBoundingClientRect();
    const dx = e.clientX - start.left;
    const dy = e.clientY - start.top;
    this.bar.setPointerCapture(e.pointerId);
    const move = (m) => this.#moveTo(m.clientX - dx, m.clientY - dy, false);
    const end = () => {
      this.bar.removeEventListener('pointermove', move);
      this.#save();
    };
    this.bar.addEventListener('pointermove', move);
    this.bar.addEventListener('pointerup', end, { once: true });
    this.bar.addEventListener('pointercancel', end, { once: true });
  }

  #gripKey(e) {
    const step = e.shiftKey ? STEP * 4 : STEP;
    const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
    if (!d) return;
    e.preventDefault();
    const r = this.host.getBoundingClientRect();
    this.#moveTo(r.left + d[0], r.top + d[1], true);
    this.#announce(`面板已移动到 ${Math.round(this.state.x)}, ${Math.round(this.state.y)}`);
  }

  setCollapsed(collapsed) {
    this.state.collapsed = collapsed;
    this.panel.classList.toggle('collapsed', collapsed);
    this.body.hidden = collapsed;
    this.toggleBtn.setAttribute('aria-expanded', String(!collapsed));
    this.toggleBtn.setAttribute('aria-label', collapsed ? '展开医保提醒面板' : '收起医保提醒面板');
    this.toggleBtn.textContent = collapsed ? '+' : '−';
    this.#save();
  }

  #build() {
    this.titleEl = el('h2', { class: 'title', text: this.opts.title || '医保智能提醒' });
    this.countEl = el('span', { class: 'count', 'aria-hidden': 'true' });
    this.toggleBtn = el('button', { type: 'button', class: 'toggle', 'aria-controls': 'dip-cds-body', onclick: () => this.setCollapsed(!this.state.collapsed) });
    const grip = el('button', { type: 'button', class: 'grip', 'aria-label': '移动面板（方向键移动，Shift 加速）', title: '拖动或用方向键移动', text: '⠿', onkeydown: (e) => this.#gripKey(e) });
    this.bar = el('header', { class: 'bar', onpointerdown: (e) => this.#drag(e) }, grip, this.titleEl, this.countEl, this.toggleBtn);
    this.statusEl = el('p', { class: 'status', text: '签署医嘱时自动检查，结果显示在这里。' });
    this.list = el('ol', { class: 'cards', 'aria-label': '提醒列表' });
    this.body = el('div', { class: 'body', id: 'dip-cds-body' }, this.statusEl, this.list);
    this.live = el('div', { class: 'sr', 'aria-live': 'polite', role: 'status' });
    this.alert = el('div', { class: 'sr', 'aria-live': 'assertive' });
    const onkeydown = (e) => {
      if (e.key !== 'Escape' || e.target.closest('form')) return;
      this.setCollapsed(true);
      this.toggleBtn.focus();
    };
    this.panel = el('section', { class: 'panel', role: 'complementary', 'aria-label': '医保智能提醒', 'data-level': 'none', onkeydown }, this.bar, this.body, this.live, this.alert);
    this.root.replaceChildren(this.panel);
    this.setCollapsed(!!this.state.collapsed);
  }

  #announce(text, urgent) {
    const region = urgent ? this.alert : this.live;
    region.textContent = '';
    setTimeout(() => (region.textContent = text), 50); // a change, so screen readers speak it again
  }

  #status(text, kind) {
    this.statusEl.textContent = text;
    this.statusEl.className = `status ${kind || ''}`;
    this.panel.setAttribute('aria-busy', String(kind === 'loading'));
  }

  // ---------------------------------------------------------------- talking to the service

  async #bearer(refresh) {
    if (!refresh && this.token && this.token.until > Date.now()) return this.token.value;
    if (!this.opts.tokenProvider) return this.token ? this.token.value : null;
    let got;
    try {
      got = await this.opts.tokenProvider();
    } catch {
      throw new Error('无法获取访问令牌（HIS 令牌接口无响应）');
    }
    const value = typeof got === 'string' ? got : got && got.access_token;
    const life = (got && got.expires_in) || 300;
    this.token = value ? { value, until: Date.now() + (life - 30) * 1000 } : null;
    return value || null;
  }

  async #post(path, body, retried) {
    const headers = { 'Content-Type': 'application/json' };
    const bearer = await this.#bearer(false);
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.opts.timeoutMs || TIMEOUT_MS);
    let resp;
    try {
      resp = await fetch(this.base + path, { method: 'POST', headers, body: JSON.stringify(body), credentials: 'omit', cache: 'no-store', signal: ctl.signal });
    } catch (err) {
      throw new Error(err.name === 'AbortError' ? '医保智能提醒服务无响应（超时）' : '无法连接医保智能提醒服务');
    } finally {
      clearTimeout(timer);
    }
    if (resp.status === 401 && !retried && this.opts.tokenProvider) {
      await this.#bearer(true);
      return this.#post(path, body, true);
    }
    const data = await resp.json().catch(() => null);
    if (resp.status === 401) throw new Error('未获授权：访问令牌无效或已过期');
    if (!resp.ok) throw new Error(`检查失败：${problemText(data, resp.status)}`);
    return data;
  }

  #emit(name, detail, cancelable) {
    return this.host.dispatchEvent(new CustomEvent(`dip-cds:${name}`, { bubbles: true, composed: true, cancelable: !!cancelable, detail }));
  }

  // Run a check and show its cards. Resolves to {cards, services, hookInstance}; never throws for
  // a failed check (the panel shows the error and the promise resolves with `error`).
  async check(r) {
    const seq = ++this.seq;
    const started = performance.now();
    const body = buildRequest({ fhirServer: this.opts.fhirServer, ...r });
    this.hookInstance = body.hookInstance;
    this.#status('正在检查…', 'loading');
    this.panel.classList.add('busy');
    try {
      const result = await this.#post('plugin/v1/check', body);
      if (seq !== this.seq) return result; // a newer check superseded this one
      this.render(result, performance.now() - started);
      return result;
    } catch (err) {
      if (seq === this.seq) this.error(err.message);
      return { error: err.message, cards: [] };
    } finally {
      if (seq === this.seq) this.panel.classList.remove('busy');
    }
  }

  // ---------------------------------------------------------------- rendering

  // Show a problem (the check failed, or the page lacks what a check needs) and announce it.
  error(message) {
    this.#status(message, 'error');
    this.panel.setAttribute('data-level', 'error');
    this.#announce(message, true);
    this.#emit('error', { message });
  }

  render(result, ms) {
    const cards = (result && result.cards) || [];
    this.cards = cards;
    const counts = { critical: 0, warning: 0, info: 0 };
    for (const c of cards) counts[c.indicator] = (counts[c.indicator] || 0) + 1;
    const top = ['critical', 'warning', 'info'].find((k) => counts[k]) || 'none';
    this.panel.setAttribute('data-level', top);
    this.countEl.textContent = cards.length ? String(cards.length) : '';
    this.list.replaceChildren(...cards.map((c, i) => this.#card(c, i)));
    const failed = ((result && result.services) || []).filter((s) => s.status !== 200);
    const when = new Date().toLocaleTimeString('zh-CN', { hour12: false });
    let text = cards.length ? `${when} 检查：${cards.length} 条提醒` : `${when} 检查：未发现医保问题`;
    if (failed.length) text += `；部分检查未完成：${failed.map((s) => `${s.id}（${(s.problems || []).join('；') || s.status}）`).join('，')}`;
    this.#status(text, failed.length ? 'partial' : 'done');
    const serious = counts.critical + counts.warning;
    const first = cards[0] ? `：${cards[0].summary}` : '';
    this.#announce(cards.length ? `医保提醒 ${cards.length} 条${serious ? `，其中警告 ${serious} 条` : ''}${first}` : '未发现医保问题', counts.critical > 0);
    if (serious && this.state.collapsed && this.opts.expandOnWarning !== false) this.setCollapsed(false);
    this.#emit('cards', { cards, services: (result && result.services) || [], hookInstance: this.hookInstance, ms });
    requestAnimationFrame(() => setTimeout(() => this.#emit('painted', { at: performance.now(), cards: cards.length })));
  }

  #card(card, i) {
    const [label] = LEVELS[card.indicator] || LEVELS.info;
    const id = `dip-cds-card-${i}`;
    const detail = el('div', { class: 'detail', id, hidden: true });
    const summary = el('button', { type: 'button', class: 'summary', 'aria-expanded': 'false', 'aria-controls': id, onclick: () => {
      const open = detail.hidden;
      detail.hidden = !open;
      summary.setAttribute('aria-expanded', String(open));
    } }, el('span', { class: 'badge', text: label }), el('span', { class: 'text', text: card.summary }));
    const md = el('div', { class: 'md' });
    if (card.detailHtml) md.innerHTML = card.detailHtml; // sanitised by the service (markdown-it + nh3)
    else if (card.detail) md.textContent = card.detail;
    const actions = el('div', { class: 'actions' });
    for (const s of card.suggestions || []) {
      actions.append(el('button', { type: 'button', class: `suggest${s.isRecommended ? ' recommended' : ''}`, text: `采纳：${s.label}`, onclick: (e) => this.#accept(card, s, item, e.currentTarget) }));
    }
    for (const link of card.links || []) {
      const url = httpUrl(link.url);
      if (url) actions.append(el('button', { type: 'button', class: 'link', text: `打开：${link.label}`, onclick: () => window.open(url, '_blank', 'noopener,noreferrer') }));
    }
    const form = this.#overrideForm(card, () => item);
    actions.append(el('button', { type: 'button', class: 'dismiss', 'aria-expanded': 'false', text: '忽略…', onclick: (e) => {
      form.hidden = !form.hidden;
      e.currentTarget.setAttribute('aria-expanded', String(!form.hidden));
      if (!form.hidden) form.querySelector('input,textarea').focus();
    } }));
    const source = card.source && card.source.label ? el('p', { class: 'source', text: `来源：${card.source.label}` }) : null;
    detail.append(md, source, actions, form);
    const item = el('li', { class: 'card', 'data-indicator': card.indicator }, summary, detail);
    return item;
  }

  #overrideForm(card, item) {
    const name = `reason-${card.uuid}`;
    const reasons = (card.overrideReasons || []).map((r, i) => el('label', { class: 'reason' }, el('input', { type: 'radio', name, value: String(i), checked: i === 0 }), ` ${r.display || r.code}`));
    const comment = el('textarea', { rows: '2', maxlength: '500', 'aria-label': '补充说明（可选）', placeholder: '补充说明（可选）' });
    const cancel = el('button', { type: 'button', class: 'secondary', text: '取消', onclick: () => (form.hidden = true) });
    const form = el('form', { class: 'override', hidden: true, onsubmit: (e) => {
      e.preventDefault();
      const picked = form.querySelector('input:checked');
      const reason = picked ? card.overrideReasons[Number(picked.value)] : null;
      this.#dismiss(card, reason, comment.value.trim(), item(), form);
    }, onkeydown: (e) => {
      if (e.key !== 'Escape') return;
      e.stopPropagation();
      form.hidden = true;
    } }, el('fieldset', {}, el('legend', { text: '忽略原因' }), ...reasons, comment), el('div', { class: 'row' }, el('button', { type: 'submit', text: '确认忽略' }), cancel));
    return form;
  }

  // ---------------------------------------------------------------- outcomes

  async #feedback(card, item) {
    const feedback = [{ card: card.uuid, outcomeTimestamp: new Date().toISOString(), ...item }];
    return this.#post('plugin/v1/feedback', { service: card.service, feedback });
  }

  #mark(item, kind, text) {
    item.classList.add(kind);
    const note = item.querySelector('.outcome') || el('p', { class: 'outcome', role: 'status' });
    note.textContent = text;
    item.querySelector('.summary').after(note);
  }

  async #accept(card, suggestion, item, button) {
    const detail = { card: { uuid: card.uuid, summary: card.summary, service: card.service }, suggestion, actions: suggestion.actions || [], hookInstance: this.hookInstance };
    const proceed = this.#emit('suggestion', detail, true);
    button.disabled = true;
    try {
      if (proceed && this.opts.applyUrl && detail.actions.length) await this.#applyToFhir(detail.actions);
      await this.#feedback(card, { outcome: 'accepted', acceptedSuggestions: [{ id: suggestion.uuid }] });
      this.#mark(item, 'accepted', `已采纳：${suggestion.label}`);
      this.#announce(`已采纳：${suggestion.label}`);
    } catch (err) {
      button.disabled = false;
      this.#mark(item, 'failed', `采纳失败：${err.message}`);
      this.#announce(`采纳失败：${err.message}`, true);
    }
  }

  async #applyToFhir(actions) {
    const headers = { 'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json' };
    if (this.opts.applyToken) headers.Authorization = `Bearer ${this.opts.applyToken}`;
    const resp = await fetch(new URL(this.opts.applyUrl, location.href).href, { method: 'POST', headers, body: JSON.stringify(transactionFor(actions)), credentials: 'omit', cache: 'no-store' });
    if (!resp.ok) throw new Error(`FHIR 服务器拒绝（HTTP ${resp.status}）`);
  }

  async #dismiss(card, reason, comment, item, form) {
    const overrideReason = {};
    if (reason) overrideReason.reason = { system: reason.system, code: reason.code, display: reason.display };
    if (comment) overrideReason.userComment = comment;
    try {
      await this.#feedback(card, { outcome: 'overridden', ...(reason || comment ? { overrideReason } : {}) });
      form.hidden = true;
      this.#mark(item, 'dismissed', `已忽略${reason ? `：${reason.display || reason.code}` : ''}`);
      item.querySelector('.detail').hidden = true;
      item.querySelector('.summary').setAttribute('aria-expanded', 'false');
      item.querySelector('.summary').focus();
      this.#emit('dismiss', { card: { uuid: card.uuid, service: card.service }, reason: overrideReason });
      this.#announce('已忽略该提醒');
    } catch (err) {
      this.#mark(item, 'failed', `提交失败：${err.message}`);
    }
  }
}

// <dip-cds-panel service="https://cds…/" fhir-server="https://his…/fhir" apply-url="https://his…/fhir"
//                title="…" hotkey="off">
const ATTRS = { service: 'service', 'fhir-server': 'fhirServer', 'apply-url': 'applyUrl', title: 'title', hotkey: 'hotkey' };
export class DipCdsPanel extends HTMLElement {
  connectedCallback() {
    if (this.panel) return;
    const opts = {};
    for (const [attr, key] of Object.entries(ATTRS)) if (this.hasAttribute(attr)) opts[key] = this.getAttribute(attr);
    this.panel = new Panel(this, opts);
  }

  disconnectedCallback() {
    if (this.panel) this.panel.destroy();
    this.panel = null;
  }

  check(r) {
    return this.panel.check(r);
  }

  configure(o) {
    return this.panel.configure(o);
  }
}

let mounted = null;
export const DipCds = {
  version: VERSION,
  Panel,
  buildRequest,
  // The page's panel: the first <dip-cds-panel>, else one created at the end of <body>.
  panel(options) {
    let p = document.querySelector('dip-cds-panel')?.panel || mounted;
    if (!p) {
      const host = document.createElement(globalThis.customElements ? 'dip-cds-panel' : 'dip-cds-host');
      document.body.append(host);
      p = host.panel || new Panel(host);
      mounted = p;
    }
    return options ? p.configure(options) : p;
  },
  configure(options) {
    return DipCds.panel(options);
  },
  check(r) {
    return DipCds.panel().check(r);
  },
};

if (globalThis.customElements && !customElements.get('dip-cds-panel')) customElements.define('dip-cds-panel', DipCdsPanel);
globalThis.DipCds ??= DipCds;
export default DipCds;

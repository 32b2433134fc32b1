// The demo HIS page's own script (not part of the panel). It shows an integrator the three ways a
// page exposes what the panel needs: DOM fields (#patient-id, #encounter-id, tr.order-row data-*),
// a JS global (window.HIS) and its own XHR (POST /his/api/chart).
const $ = (sel) => document.querySelector(sel);
const KIND = { drug: '药品', procedure: '手术', item: '诊疗' };
const state = { catalog: [], chart: null, orders: [], seq: 0 };

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  return td;
}

function draftOrders() {
  const c = state.chart;
  if (!c) return [];
  const subject = { reference: `Patient/${c.patient.id}` };
  const encounter = { reference: `Encounter/${c.encounter.id}` };
  const requester = { reference: `Practitioner/${c.doctor.id}` };
  return state.orders.map((o) => {
    const coding = [{ system: o.system, code: o.code, display: o.name }];
    if (o.kind === 'drug') {
      return { resourceType: 'MedicationRequest', id: o.id, status: 'draft', intent: 'order', subject, encounter, requester,
        medicationCodeableConcept: { coding, text: o.name }, dispenseRequest: { quantity: { value: o.qty, unit: o.unit } } };
    }
    return { resourceType: 'ServiceRequest', id: o.id, status: 'draft', intent: 'order', subject, encounter, requester,
      code: { coding, text: o.name }, quantityQuantity: { value: o.qty } };
  });
}

// The JS global an extension can read (configured as a "JS global" source).
window.HIS = {
  get patientId() { return state.chart?.patient.id ?? null; },
  get encounterId() { return state.chart?.encounter.id ?? null; },
  get doctorId() { return state.chart?.doctor.id ?? null; },
  get draftOrders() { return draftOrders(); },
  accepted: [],
};

function message(text) {
  $('#his-message').textContent = text;
}

function renderOrders() {
  const rows = state.orders.map((o) => {
    const tr = document.createElement('tr');
    tr.className = 'order-row';
    Object.assign(tr.dataset, { kind: o.kind, code: o.code, system: o.system, name: o.name, qty: String(o.qty), unit: o.unit });
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = '删除';
    remove.setAttribute('aria-label', `删除医嘱 ${o.name}`);
    remove.addEventListener('click', () => {
      state.orders = state.orders.filter((x) => x !== o);
      renderOrders();
    });
    const action = cell('');
    action.append(remove);
    tr.append(cell(KIND[o.kind]), cell(o.code), cell(o.name), cell(String(o.qty)), cell(o.price), action);
    return tr;
  });
  $('#order-rows').replaceChildren(...rows);
  $('#sign-btn').disabled = !state.chart || !state.orders.length;
}

function renderDiagnoses() {
  if (!state.chart.diagnoses.length) {
    const tr = document.createElement('tr');
    const td = cell('尚未录入诊断');
    td.colSpan = 4;
    td.className = 'muted';
    tr.append(td);
    return $('#diagnosis-rows').replaceChildren(tr);
  }
  const rows = state.chart.diagnoses.map((d, i) => {
    const tr = document.createElement('tr');
    tr.dataset.condition = d.conditionId;
    const system = d.system ? d.system.split('/').pop() : '仅文字';
    tr.append(cell(String(d.rank ?? i + 1)), cell(d.code || '—'), cell(d.display), cell(system));
    return tr;
  });
  $('#diagnosis-rows').replaceChildren(...rows);
}

async function openPatient(id, button) {
  const resp = await fetch('/his/api/chart', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ patientId: id }) });
  if (!resp.ok) return message('无法打开病历');
  state.chart = await resp.json();
  state.orders = [];
  for (const b of document.querySelectorAll('#patient-list button')) b.setAttribute('aria-current', String(b === button));
  const { patient, encounter } = state.chart;
  $('#chart-title').textContent = `${patient.name} · 住院病历`;
  $('#patient-id').value = patient.id;
  $('#encounter-id').value = encounter.id;
  $('#patient-gender').textContent = { male: '男', female: '女' }[patient.gender] || '未知';
  $('#patient-age').textContent = patient.age ?? '—';
  $('#patient-dept').textContent = encounter.department || '—';
  $('#patient-admitted').textContent = (encounter.start || '—').replace('T', ' ').slice(0, 16);
  $('#discharge-btn').disabled = false;
  renderDiagnoses();
  renderOrders();
  message('');
  document.body.dataset.patient = patient.id;
}

async function load() {
  const resp = await fetch('/his/api/patients');
  const data = await resp.json();
  state.catalog = data.orderables;
  const select = $('#order-item');
  select.replaceChildren(...state.catalog.map((o, i) => {
    const opt = document.createElement('option');
    opt.value = String(i);
    opt.textContent = `[${KIND[o.kind]}] ${o.code} ${o.name}（${o.price} 元/${o.unit}）`;
    return opt;
  }));
  $('#patient-list').replaceChildren(...data.patients.map((p) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.patient = p.id;
    b.textContent = `${p.bed} ${p.name} ${{ male: '男', female: '女' }[p.gender] || ''} ${p.age ?? ''}岁 ${p.department || ''}`;
    b.addEventListener('click', () => openPatient(p.id, b));
    li.append(b);
    return li;
  }));
  document.body.dataset.ready = 'true';
}

$('#order-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const item = state.catalog[Number($('#order-item').value)];
  const qty = Math.max(1, Number($('#order-qty').value) || 1);
  if (!item || !state.chart) return;
  state.orders.push({ ...item, qty, id: `draft-${++state.seq}` });
  renderOrders();
});

load();

// The panel (script-tag mode only): a page token from our own backend, then a check on sign.
const panelMode = document.body.dataset.panel === 'script';
if (panelMode) {
  await customElements.whenDefined('dip-cds-panel');
  window.DipCds.configure({
    tokenProvider: () => fetch('/his/api/cds-token', { method: 'POST' }).then((r) => (r.ok ? r.json() : null)),
  });
}

function check(hook) {
  const c = state.chart;
  const request = { hook, patientId: c.patient.id, encounterId: c.encounter.id, userId: `Practitioner/${c.doctor.id}` };
  if (hook === 'order-sign') request.draftOrders = draftOrders();
  return window.DipCds.check(request);
}

$('#sign-btn').addEventListener('click', () => {
  message(`已签署 ${state.orders.length} 条医嘱（演示：未真正保存）`);
  if (panelMode) check('order-sign');
});
$('#discharge-btn').addEventListener('click', () => {
  message('已提交出院诊断审核');
  if (panelMode) check('encounter-discharge');
});

// A suggestion the doctor accepted in the panel: the HIS decides what it means for its own record.
document.addEventListener('dip-cds:suggestion', (e) => {
  const { suggestion, card } = e.detail;
  window.HIS.accepted.push({ card: card.uuid, suggestion: suggestion.uuid, label: suggestion.label, actions: suggestion.actions.length });
  message(`已采纳建议：${suggestion.label}`);
});

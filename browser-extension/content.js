// Injected into the configured HIS pages: shows the panel and runs a check when the doctor presses
// the page's own sign button, reading the patient, encounter, user and draft orders as configured.
(async () => {
  if (window.__dipCdsContent) return;
  window.__dipCdsContent = true;
  const { loadConfig, pathGet, ordersToFhir } = await import(chrome.runtime.getURL('lib/config.js'));
  const { Panel } = await import(chrome.runtime.getURL('widget/dip-cds.js'));
  const cfg = await loadConfig();

  let answer = null;
  document.addEventListener('dip-cds-bridge:answer', (e) => {
    try {
      answer = JSON.parse(e.detail);
    } catch {
      answer = null;
    }
  });
  // Events cross into the page's world and back synchronously, so this is a plain function call.
  function ask(source) {
    const id = Math.random().toString(36).slice(2);
    answer = null;
    document.dispatchEvent(new CustomEvent('dip-cds-bridge:ask', { detail: JSON.stringify({ ...source, id }) }));
    return answer && answer.id === id ? answer.value : null;
  }

  function fromRow(row, spec) {
    if (!spec) return undefined;
    if (spec.startsWith('@')) return row.getAttribute(spec.slice(1)) ?? undefined;
    const node = row.querySelector(spec);
    return node ? (node.value ?? node.textContent).trim() : undefined;
  }

  function read(source) {
    if (!source || !source.value) return null;
    if (source.from === 'selector') {
      const node = document.querySelector(source.value);
      if (!node) return null;
      const v = source.attribute ? node.getAttribute(source.attribute) : 'value' in node && node.tagName !== 'BUTTON' ? node.value : node.textContent;
      return v == null ? null : String(v).trim() || null;
    }
    return ask(source);
  }

  function readOrders(ctx) {
    const src = cfg.draftOrders;
    let rows;
    if (src.from === 'selector') {
      rows = [...document.querySelectorAll(src.value)].map((row) => {
        const f = cfg.orderFields || {};
        return { code: fromRow(row, f.code), name: fromRow(row, f.name), system: fromRow(row, f.system), quantity: fromRow(row, f.quantity), kind: fromRow(row, f.kind) };
      });
    } else rows = read(src);
    return ordersToFhir(rows || [], ctx);
  }

  const host = document.createElement('dip-cds-host');
  document.body.append(host);
  const options = { service: cfg.serviceUrl, fhirServer: cfg.fhirServer || undefined };
  if (cfg.tokenUrl) {
    // The HIS's own token endpoint (same site as the page, with its session cookies): no secret in the extension.
    options.tokenProvider = () => fetch(new URL(cfg.tokenUrl, location.href).href, { method: 'POST', credentials: 'include' }).then((r) => (r.ok ? r.json() : null));
  }
  const panel = new Panel(host, options);

  document.addEventListener(
    'click',
    (e) => {
      if (!cfg.signButton || !(e.target instanceof Element) || !e.target.closest(cfg.signButton)) return;
      const ctx = { patientId: read(cfg.patientId), encounterId: read(cfg.encounterId) };
      const user = read(cfg.userId);
      if (!ctx.patientId) {
        panel.error('未能从页面读取患者编号：请在扩展选项中检查“患者编号”的读取方式');
        return;
      }
      const userId = user && !user.includes('/') ? `${cfg.userPrefix || ''}${user}` : user;
      const request = { hook: cfg.hook || 'order-sign', ...ctx, userId: userId || undefined };
      if (request.hook === 'order-sign' || request.hook === 'order-select') request.draftOrders = readOrders(ctx);
      panel.check(request);
    },
    true, // capture: read the page before its own handler changes it, even if it stops the event
  );
})();

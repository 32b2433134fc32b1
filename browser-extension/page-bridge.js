// Runs in the HIS page's own JavaScript world (MAIN), from document start: answers the content
// script's questions about JS globals and keeps the last JSON answers of the page's own XHR/fetch
// calls (in page memory only, where they already are), so a hospital can point the extension at
// data the page loads but never shows. It sends nothing anywhere.
(() => {
  if (window.__dipCdsBridge) return;
  Object.defineProperty(window, '__dipCdsBridge', { value: true });
  const recent = [];
  const keep = (url, body) => {
    recent.push({ url: String(url), body });
    if (recent.length > 30) recent.shift();
  };
  const json = (type) => /json/i.test(type || '');
  const get = (root, path) => String(path || '').split('.').filter(Boolean).reduce((v, k) => (v == null ? v : v[k]), root);

  const origFetch = window.fetch;
  window.fetch = function (...args) {
    return origFetch.apply(this, args).then((resp) => {
      if (json(resp.headers.get('content-type'))) resp.clone().json().then((b) => keep(resp.url, b), () => {});
      return resp;
    });
  };
  const open = XMLHttpRequest.prototype.open;
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.__dipCdsUrl = new URL(url, location.href).href;
    return open.call(this, method, url, ...rest);
  };
  XMLHttpRequest.prototype.send = function (...args) {
    this.addEventListener('load', () => {
      try {
        if (this.responseType === 'json') keep(this.__dipCdsUrl, this.response);
        else if ((this.responseType === '' || this.responseType === 'text') && json(this.getResponseHeader('content-type'))) keep(this.__dipCdsUrl, JSON.parse(this.responseText));
      } catch {
        /* not JSON after all: nothing to keep */
      }
    });
    return send.apply(this, args);
  };

  document.addEventListener('dip-cds-bridge:ask', (e) => {
    let q;
    try {
      q = JSON.parse(e.detail);
    } catch {
      return;
    }
    let value = null;
    if (q.from === 'global') value = get(window, q.value);
    else if (q.from === 'xhr') {
      const hit = [...recent].reverse().find((r) => r.url.includes(q.value));
      value = hit ? get(hit.body, q.path) : null;
    }
    let detail;
    try {
      detail = JSON.stringify({ id: q.id, value: value === undefined ? null : value });
    } catch {
      detail = JSON.stringify({ id: q.id, value: null });
    }
    document.dispatchEvent(new CustomEvent('dip-cds-bridge:answer', { detail }));
  });
})();

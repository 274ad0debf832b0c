/*
 * Fulcrum dashboard, protection panel: per listener with `protection`, refusals by reason, the
 * surge state, clients blocked by detection (with an Unblock button) and the top talkers of the
 * current window. Polls GET /api/protection every 2 s while the page is visible. Its own file
 * and section, independent of app.js.
 */
(() => {
  const enc = encodeURIComponent;
  const box = document.getElementById('protection');
  if (!box) return;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else e[k] = v;
    }
    for (const c of children) e.append(c);
    return e;
  }

  async function unblock(listener, ip, button) {
    button.disabled = true;
    const res = await fetch(`/api/protection/${enc(listener)}/blocked/${enc(ip)}`, {
      method: 'DELETE',
    }).catch(() => null);
    if (res && res.status === 401) return location.reload();
    refresh();
  }

  function table(head, rows) {
    return el(
      'table',
      {},
      el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))),
      el('tbody', {}, ...rows),
    );
  }

  function listenerView(l) {
    const refused = Object.entries(l.rejected).filter(([, n]) => n > 0);
    const s = l.surge;
    const parts = [
      el('h3', {}, `${l.listener} `, el('span', { class: 'meta' }, l.protocol || '')),
      el(
        'p',
        { class: 'meta' },
        'refused: ',
        refused.length === 0 ? 'none' : refused.map(([reason, n]) => `${reason} ${n}`).join(' · '),
      ),
    ];
    if (s) {
      parts.push(
        el(
          'p',
          { class: s.active ? 'surge active' : 'surge' },
          s.active
            ? `SURGE since ${new Date(s.since).toLocaleTimeString()}: ${s.rate} req/s above ${s.threshold} (baseline ${s.baseline}); new clients get 503`
            : `no surge: ${s.rate} req/s, sheds above ${s.threshold} (baseline ${s.baseline} req/s)`,
        ),
      );
    }
    if (l.blocked.length > 0) {
      parts.push(
        table(
          ['blocked client', 'until', 'why', ''],
          l.blocked.map((b) => {
            const button = el('button', { type: 'button' }, 'Unblock');
            button.addEventListener('click', () => unblock(l.listener, b.ip, button));
            return el(
              'tr',
              {},
              el('td', { class: 'address' }, b.ip),
              el('td', {}, new Date(b.until).toLocaleTimeString()),
              el('td', {}, b.reason),
              el('td', {}, button),
            );
          }),
        ),
      );
    }
    if (l.top.length > 0) {
      parts.push(
        table(
          ['top talker', 'requests', 'refused', '401/403/404'],
          l.top.map((t) =>
            el(
              'tr',
              {},
              el('td', { class: 'address' }, t.ip),
              el('td', { class: 'num' }, String(t.requests)),
              el('td', { class: 'num' }, String(t.refused)),
              el('td', { class: 'num' }, String(t.errors)),
            ),
          ),
        ),
      );
    }
    return el('div', { class: 'protection-listener' }, ...parts);
  }

  async function refresh() {
    if (document.hidden) return;
    const res = await fetch('/api/protection').catch(() => null);
    if (!res?.ok) return;
    const { listeners } = await res.json();
    box.hidden = listeners.length === 0;
    box.querySelector('.protection-body').replaceChildren(...listeners.map(listenerView));
  }

  refresh();
  setInterval(refresh, 2000);
})();

/*
 * Fulcrum dashboard, Lab panel (the demo lab only: `fulcrum demo`): kill and restart a backend,
 * switch the session strategy, start the simulated users and watch their lost sessions live,
 * and a link to the lab report. Shown only when GET /api lists the demo's routes; then polls
 * GET /api/demo every second while the page is visible. Its own file and section.
 */
(() => {
  const enc = encodeURIComponent;
  const box = document.getElementById('lab');
  if (!box) return;
  const $ = (id) => document.getElementById(id);
  let busy = false;
  let last = null;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c);
    return e;
  }

  let toastTimer;
  function toast(text, ok) {
    const t = $('toast');
    if (!t) return;
    t.textContent = text;
    t.className = ok ? 'toast ok' : 'toast';
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (t.hidden = true), ok ? 2500 : 8000);
  }

  async function post(path, body, done) {
    busy = true;
    box.dataset.busy = 'true';
    if (last) render(last);
    try {
      const res = await fetch(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body || {}),
      });
      if (res.status === 401) return location.reload();
      const data = await res.json().catch(() => ({}));
      if (!res.ok) {
        toast(data.error || `${res.status} ${res.statusText}`, false);
      } else {
        if (done) toast(done, true);
        last = data;
      }
    } catch (err) {
      toast(String(err), false);
    } finally {
      busy = false;
      box.dataset.busy = 'false';
      if (last) render(last);
    }
  }

  const pct = (n, of) => (of > 0 ? `${((100 * n) / of).toFixed(1)}%` : '–');

  // Rows and buttons are made once and updated in place: a click must not land on a node that
  // the next refresh replaced.
  const rows = new Map();
  const strategyButtons = new Map();
  function backendRow(id) {
    let r = rows.get(id);
    if (r) return r;
    const cells = {
      address: el('td', { class: 'address' }),
      process: el('td', { class: 'process' }),
      badge: el('span', { class: 'badge' }),
      served: el('td', { class: 'num served' }),
      bar: el('i'),
      share: el('span', { class: 'pct' }),
      users: el('td', { class: 'num users' }),
      button: el('button', { type: 'button', 'data-backend': id }),
    };
    cells.button.addEventListener('click', () => {
      const action = cells.button.dataset.action;
      post(
        `/api/demo/backends/${enc(id)}/${action}`,
        {},
        `${id}: ${action === 'kill' ? 'killed' : 'restarted'}`,
      );
    });
    const tr = el(
      'tr',
      { class: 'server lab-backend', 'data-backend': id },
      el('td', {}, id),
      cells.address,
      cells.process,
      el('td', {}, cells.badge),
      cells.served,
      el('td', {}, el('span', { class: 'share' }, cells.bar), cells.share),
      cells.users,
      el('td', {}, cells.button),
    );
    r = { tr, cells };
    rows.set(id, r);
    $('lab-backends').append(tr);
    return r;
  }

  function render(v) {
    const users = v.users;
    const total = Object.values(users.byServer).reduce((sum, x) => sum + x.requests, 0);
    for (const b of v.backends) {
      const { tr, cells } = backendRow(b.id);
      const served = users.byServer[b.id] || { requests: 0, users: 0 };
      tr.dataset.state = b.running ? b.state : 'down';
      tr.dataset.running = String(b.running);
      cells.address.textContent = b.address;
      cells.process.textContent = b.running ? 'running' : 'killed';
      cells.process.className = b.running ? 'process' : 'process killed';
      cells.badge.textContent = b.state;
      cells.badge.className = `badge ${b.state}`;
      cells.served.textContent = String(served.requests);
      cells.bar.style.width = total > 0 ? `${(100 * served.requests) / total}%` : '0';
      cells.share.textContent = pct(served.requests, total);
      cells.users.textContent = String(served.users);
      cells.button.dataset.action = b.running ? 'kill' : 'restart';
      cells.button.textContent = b.running ? 'Kill' : 'Restart';
      cells.button.disabled = busy;
    }

    const current = v.strategies.find((s) => s.name === v.strategy);
    for (const s of v.strategies) {
      let b = strategyButtons.get(s.name);
      if (!b) {
        b = el('button', { type: 'button', 'data-strategy': s.name }, s.label);
        b.addEventListener('click', () => {
          if (b.dataset.current !== 'true')
            post('/api/demo/strategy', { strategy: s.name }, `now: ${s.label}`);
        });
        strategyButtons.set(s.name, b);
        $('lab-strategies').append(b);
      }
      b.dataset.current = String(s.name === v.strategy);
      b.className = s.name === v.strategy ? 'strategy current' : 'strategy';
      b.disabled = busy || !s.available;
      b.title = s.available ? s.expect : s.reason;
    }
    const unavailable = v.strategies.filter((s) => !s.available);
    $('lab-expect').textContent =
      (current ? `${current.label}: ${current.expect}.` : '') +
      unavailable.map((s) => ` ${s.label} unavailable: ${s.reason}.`).join('');

    const usersButton = $('lab-users');
    usersButton.textContent = users.running ? 'Stop users' : 'Start users';
    usersButton.dataset.running = String(users.running);
    usersButton.disabled = busy;
    $('lab-reset').disabled = busy;
    $('lab-users-meta').textContent =
      `${users.users} users with their own cookie jar ask GET /session through the balancer (${users.heavy} five times as often as the others); a session is lost when its counter goes back. ${users.running ? 'Running.' : 'Stopped.'}`;

    $('lab-counts').replaceChildren(
      ...v.strategies.map((s) => {
        const c = users.byStrategy[s.name] || { requests: 0, failed: 0, lost: 0 };
        return el(
          'tr',
          { class: s.name === v.strategy ? 'current' : '', 'data-strategy': s.name },
          el('td', {}, s.label),
          el('td', { class: 'num requests' }, String(c.requests)),
          el('td', { class: 'num failed' }, String(c.failed)),
          el('td', { class: c.lost > 0 ? 'num lost some' : 'num lost' }, String(c.lost)),
          el('td', { class: 'num' }, pct(c.lost, c.requests)),
        );
      }),
    );

    const report = $('lab-report');
    if (v.report.available) {
      report.replaceChildren(
        el('a', { href: v.report.url, target: '_blank', rel: 'noopener' }, 'lab report ↗'),
      );
    } else {
      report.replaceChildren('no lab report yet: run ', el('code', {}, v.report.command));
    }
  }

  async function refresh() {
    if (document.hidden || busy) return;
    const res = await fetch('/api/demo').catch(() => null);
    if (!res?.ok || busy) return;
    last = await res.json();
    render(last);
  }

  async function probe() {
    const res = await fetch('/api').catch(() => null);
    if (!res?.ok) return;
    const { routes } = await res.json();
    if (!routes.some((r) => r.path === '/api/demo')) return;
    box.hidden = false;
    $('lab-users').addEventListener('click', () => {
      const running = $('lab-users').dataset.running === 'true';
      post('/api/demo/users', { running: !running });
    });
    $('lab-reset').addEventListener('click', () =>
      post('/api/demo/users', { reset: true }, 'counts cleared'),
    );
    await refresh();
    setInterval(refresh, 1000);
  }

  probe();
})();

/*
 * Fulcrum dashboard: a live view of the pools and servers, fed by the admin event stream
 * (GET /api/events, a snapshot every second), with buttons that call the admin API. No framework:
 * rows are built once per server set and updated in place; charts are uPlot.
 */
(() => {
  const HISTORY = 120; // seconds kept in the charts
  const COLORS = [
    '#3e7bfa',
    '#2fb344',
    '#f5a524',
    '#d55fde',
    '#22b8cf',
    '#e5484d',
    '#a3e635',
    '#ff8a3d',
    '#8b5cf6',
    '#14b8a6',
  ];
  const views = new Map(); // pool name → view
  const enc = encodeURIComponent;

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

  const fmtRate = (n) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
  const fmtMs = (n) =>
    n == null ? '–' : n < 1 ? `${n.toFixed(2)} ms` : n < 100 ? `${n.toFixed(1)} ms` : `${n.toFixed(0)} ms`;
  const fmtBytes = (n) =>
    n < 1024
      ? `${n} B`
      : n < 1024 ** 2
        ? `${(n / 1024).toFixed(1)} KiB`
        : n < 1024 ** 3
          ? `${(n / 1024 ** 2).toFixed(1)} MiB`
          : `${(n / 1024 ** 3).toFixed(2)} GiB`;
  const clock = (t) =>
    new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const ago = (iso) => {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago` : `${Math.floor(s / 3600)}h ago`;
  };

  // ------------------------------------------------------------------------------ toast

  let toastTimer;
  function toast(text, ok) {
    const t = document.getElementById('toast');
    t.textContent = text;
    t.className = ok ? 'toast ok' : 'toast';
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (t.hidden = true), ok ? 2500 : 8000);
  }

  async function act(pool, id, body) {
    try {
      const res = await fetch(`/api/pools/${enc(pool)}/servers/${enc(id)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status === 401) return location.reload();
      const data = await res.json().catch(() => ({}));
      if (!res.ok) return toast(data.error || `${res.status} ${res.statusText}`, false);
      toast(`${pool}/${id}: ${data.state}, weight ${data.weight}${data.note ? ` (${data.note})` : ''}`, true);
    } catch (err) {
      toast(String(err), false);
    }
  }

  // ------------------------------------------------------------------------------ charts

  function chart(box, ids, data, unit) {
    const style = getComputedStyle(document.documentElement);
    const dim = style.getPropertyValue('--dim').trim();
    const grid = style.getPropertyValue('--line').trim();
    const axis = { stroke: dim, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    const opts = {
      width: Math.max(300, box.clientWidth || 400),
      height: 170,
      legend: { live: false },
      cursor: { show: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
      axes: [
        {
          ...axis,
          space: 70,
          incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300],
          values: (_u, vals) => vals.map(clock),
        },
        { ...axis, size: 56, values: (_u, vals) => vals.map((v) => v + unit) },
      ],
      series: [
        {},
        ...ids.map((id, i) => ({
          label: id,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          points: { show: false },
        })),
      ],
    };
    return typeof uPlot === 'function' ? new uPlot(opts, data, box) : null;
  }

  // ------------------------------------------------------------------------------ pools

  function createView(p) {
    const section = el('section', { class: 'pool', 'data-pool': p.name });
    const head = el(
      'div',
      { class: 'pool-head' },
      el('h2', {}, `pool ${p.name}`),
      el('span', { class: 'meta' }),
    );
    const charts = el('div', { class: 'charts' });
    const table = el('table');
    const thead = el('thead');
    const tr = el('tr');
    for (const t of [
      'server',
      'address',
      'state',
      'weight',
      'share',
      'req/s',
      'p50',
      'p99',
      'active',
      'total',
      '4xx',
      '5xx',
      'retries',
      'in',
      'out',
      'health',
      'last change',
      '',
    ]) {
      tr.append(el('th', {}, t));
    }
    thead.append(tr);
    const tbody = el('tbody');
    table.append(thead, tbody);
    // The table scrolls sideways inside its panel on a narrow screen; the page does not.
    section.append(head, charts, el('div', { class: 'table-wrap' }, table));
    document.getElementById('pools').append(section);
    const view = {
      name: p.name,
      section,
      head,
      charts,
      tbody,
      ids: '',
      rows: new Map(),
      times: [],
      rate: new Map(),
      p99: new Map(),
      plots: [],
    };
    views.set(p.name, view);
    return view;
  }

  function rebuild(view, p) {
    view.ids = p.servers.map((s) => s.id).join('\n');
    view.tbody.textContent = '';
    view.rows.clear();
    p.servers.forEach((s, i) => {
      view.rows.set(s.id, row(view, s, COLORS[i % COLORS.length]));
    });
    for (const s of p.servers) {
      if (!view.rate.has(s.id)) {
        view.rate.set(
          s.id,
          view.times.map(() => null),
        );
        view.p99.set(
          s.id,
          view.times.map(() => null),
        );
      }
    }
    for (const id of [...view.rate.keys()]) {
      if (!view.rows.has(id)) {
        view.rate.delete(id);
        view.p99.delete(id);
      }
    }
    for (const plot of view.plots) plot?.destroy();
    view.charts.textContent = '';
    const ids = p.servers.map((s) => s.id);
    // Both boxes first, so that each is measured at its final width.
    const boxes = ['requests per second', 'latency p99 (last 10 s)'].map((title) => {
      const box = el('div', { class: 'chart' }, el('h3', {}, title));
      view.charts.append(box);
      return box;
    });
    view.plots = [
      chart(boxes[0], ids, seriesData(view, view.rate), ''),
      chart(boxes[1], ids, seriesData(view, view.p99), ' ms'),
    ];
  }

  function seriesData(view, map) {
    return [view.times, ...[...view.rows.keys()].map((id) => map.get(id))];
  }

  function row(view, s, color) {
    const tr = el('tr', { class: 'server', 'data-server': s.id, 'data-state': s.state });
    const cells = {};
    const td = (name, cls, ...children) => {
      cells[name] = el('td', { class: cls || name }, ...children);
      tr.append(cells[name]);
    };
    const dot = el('span', { class: 'dot' });
    dot.style.background = color;
    td('name', 'name', dot, s.id);
    td('address', 'address', s.address);
    td('state', 'state');
    td('weight', 'num weight');
    const bar = el('i');
    td('share', 'share-cell', el('span', { class: 'share' }, bar), el('span'));
    cells.bar = bar;
    td('rate', 'num rate');
    td('p50', 'num p50');
    td('p99', 'num p99');
    td('active', 'num active');
    for (const name of ['total', 'e4xx', 'e5xx', 'retries', 'bytesIn', 'bytesOut']) td(name, `num ${name}`);
    td('health', 'health');
    td('reason', 'reason');
    const weight = el('input', {
      class: 'weight',
      type: 'number',
      min: 0,
      max: 256,
      value: String(s.weight),
      title: 'weight',
    });
    const button = (action, label, onclick) =>
      el('button', { 'data-action': action, type: 'button', onclick }, label);
    cells.buttons = {
      drain: button('drain', 'Drain', () => act(view.name, s.id, { state: 'drain' })),
      ready: button('ready', 'Ready', () => act(view.name, s.id, { state: 'ready' })),
      maintenance: button('maintenance', 'Maint.', () => act(view.name, s.id, { state: 'maintenance' })),
      weight: button('weight', 'Set weight', () => act(view.name, s.id, { weight: Number(weight.value) })),
    };
    weight.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') cells.buttons.weight.click();
    });
    const b = cells.buttons;
    td(
      'actions',
      'actions-cell',
      el('div', { class: 'actions' }, b.drain, b.ready, b.maintenance, weight, b.weight),
    );
    cells.weightInput = weight;
    view.tbody.append(tr);
    return { tr, cells };
  }

  function update(r, s) {
    const { tr, cells } = r;
    tr.dataset.state = s.state;
    const badge = el('span', { class: `badge ${s.state}` }, s.removing ? `${s.state} (removing)` : s.state);
    cells.state.replaceChildren(badge);
    if (s.ejected)
      cells.state.append(el('span', { class: 'badge ejected', title: `until ${s.ejectedUntil}` }, 'ejected'));
    cells.weight.textContent =
      s.effectiveWeight !== s.weight ? `${s.weight} (${s.effectiveWeight})` : String(s.weight);
    if (document.activeElement !== cells.weightInput) cells.weightInput.value = String(s.weight);
    cells.bar.style.width = `${Math.round(s.share * 100)}%`;
    cells.share.lastChild.textContent = `${Math.round(s.share * 100)}%`;
    cells.rate.textContent = fmtRate(s.requestRate);
    cells.rate.dataset.rate = String(s.requestRate);
    cells.p50.textContent = fmtMs(s.latencyMs?.p50);
    cells.p99.textContent = fmtMs(s.latencyMs?.p99);
    cells.active.textContent = String(s.active);
    const t0 = s.totals;
    cells.total.textContent = String(t0.requests);
    cells.e4xx.textContent = String(t0.errors4xx);
    cells.e5xx.textContent = String(t0.errors5xx);
    cells.retries.textContent = String(t0.retries);
    cells.bytesIn.textContent = fmtBytes(t0.bytesIn);
    cells.bytesOut.textContent = fmtBytes(t0.bytesOut);
    cells.health.textContent = s.health ? `${s.health.ok ? '✓' : '✗'} ${s.health.lastResult}` : '–';
    const t = s.lastTransition;
    cells.reason.textContent = t ? `${t.from} → ${t.to} ${ago(t.at)}: ${t.reason}` : '–';
    cells.buttons.drain.disabled = s.state === 'draining' || s.removing;
    cells.buttons.maintenance.disabled = s.state === 'maintenance' || s.removing;
    cells.buttons.ready.disabled = s.state === 'up' || s.removing;
  }

  function render(snap) {
    document.getElementById('updated').textContent = new Date(snap.time).toLocaleTimeString();
    const servers = snap.pools.reduce((n, p) => n + p.servers.length, 0);
    document.getElementById('summary').textContent =
      `${snap.listeners.length} listener(s) · ${snap.pools.length} pool(s) · ${servers} server(s) · up ${snap.uptimeSeconds}s`;
    renderListeners(snap.listeners);
    renderWorkers(snap.workers);
    const t = Date.parse(snap.time) / 1000;
    for (const p of snap.pools) {
      const view = views.get(p.name) || createView(p);
      if (view.ids !== p.servers.map((s) => s.id).join('\n')) rebuild(view, p);
      view.head.lastChild.textContent = `${p.algorithm} · ${fmtRate(p.requestRate)} req/s${p.healthCheck ? ` · health: ${p.healthCheck}` : ''}`;
      view.times.push(t);
      for (const s of p.servers) {
        view.rate.get(s.id).push(s.requestRate);
        view.p99.get(s.id).push(s.latencyMs ? s.latencyMs.p99 : null);
        update(view.rows.get(s.id), s);
      }
      if (view.times.length > HISTORY) {
        view.times.shift();
        for (const a of view.rate.values()) a.shift();
        for (const a of view.p99.values()) a.shift();
      }
      const [rate, lat] = view.plots;
      rate?.setData(seriesData(view, view.rate));
      lat?.setData(seriesData(view, view.p99));
    }
    const names = new Set(snap.pools.map((p) => p.name));
    for (const [name, view] of views) {
      if (names.has(name)) continue;
      view.section.remove();
      views.delete(name);
    }
  }

  /** One row per worker process (workers: N); the section stays hidden for a single process. */
  function renderWorkers(workers) {
    const section = document.getElementById('workers-section');
    section.hidden = workers === undefined;
    if (workers === undefined) return;
    const rows = workers.map((w) =>
      el(
        'tr',
        { 'data-worker': String(w.id) },
        el('td', {}, String(w.id)),
        el('td', { class: 'num' }, String(w.pid)),
        el('td', {}, w.state),
        el('td', { class: 'num' }, `${w.uptimeSeconds}s`),
        ...[w.restarts, w.connections, w.requests].map((n) => el('td', { class: 'num' }, String(n))),
        el('td', { class: 'num' }, fmtRate(w.requestsPerSecond)),
      ),
    );
    document.getElementById('workers').replaceChildren(...rows);
  }

  function renderListeners(listeners) {
    const rows = listeners.map((l) => {
      const t = l.totals;
      return el(
        'tr',
        { 'data-listener': l.name },
        el('td', {}, l.name),
        el('td', {}, l.protocol),
        el('td', { class: 'address' }, l.listen),
        ...[l.connections, t.requests, t.errors4xx, t.errors5xx, t.retries].map((n) =>
          el('td', { class: 'num' }, String(n)),
        ),
        el('td', { class: 'num' }, fmtBytes(t.bytesIn)),
        el('td', { class: 'num' }, fmtBytes(t.bytesOut)),
      );
    });
    document.getElementById('listeners').replaceChildren(...rows);
  }

  function transition(e) {
    const li = el(
      'li',
      {},
      `${new Date(e.at).toLocaleTimeString()} `,
      el('b', {}, `${e.pool}/${e.server}`),
      ` ${e.from} → ${e.to}: ${e.reason}`,
    );
    const list = document.getElementById('events');
    list.querySelector('.empty')?.remove();
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
    const r = views.get(e.pool)?.rows.get(e.server);
    if (r) {
      r.tr.dataset.state = e.to;
      r.cells.state.replaceChildren(el('span', { class: `badge ${e.to}` }, e.to));
      r.tr.classList.add('flash');
      setTimeout(() => r.tr.classList.remove('flash'), 600);
    }
  }

  // ------------------------------------------------------------------------------ stream

  function connect() {
    const conn = document.getElementById('conn');
    const es = new EventSource('/api/events');
    es.addEventListener('open', () => {
      conn.dataset.state = 'open';
      conn.textContent = 'live';
    });
    es.addEventListener('snapshot', (e) => render(JSON.parse(e.data)));
    es.addEventListener('transition', (e) => transition(JSON.parse(e.data)));
    es.addEventListener('error', async () => {
      conn.dataset.state = es.readyState === EventSource.CLOSED ? 'closed' : 'connecting';
      conn.textContent = es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…';
      if (es.readyState !== EventSource.CLOSED) return;
      const res = await fetch('/api/status').catch(() => null);
      if (res && res.status === 401) location.reload();
      else setTimeout(connect, 2000);
    });
  }

  window.addEventListener('resize', () => {
    for (const v of views.values()) {
      for (const plot of v.plots)
        if (plot) plot.setSize({ width: Math.max(300, plot.root.parentElement.clientWidth), height: 170 });
    }
  });

  connect();
})();

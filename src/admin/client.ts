/**
 * `fulcrum status` and `fulcrum server ...`: the admin API from the shell. Which balancer: the
 * `--admin URL` option, else $FULCRUM_ADMIN, else `admin.listen` of the `-c FILE` config (or of
 * ./fulcrum.yaml when present), else http://127.0.0.1:9000. The token: `--token`, else $FULCRUM_ADMIN_TOKEN, else the config's.
 *
 * Exit status: 0 done, 2 bad input (rejected by the API: invalid value, unknown pool or server),
 * 1 anything else (unreachable, unauthorized, server error).
 */
import { configOrDefault } from '../config/defaultFile.js';
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import { describeReload } from '../runtime/describeReload.js';
import type { WorkerRow } from './clusterView.js';
import type { ReloadResult } from './control.js';
import type { PoolView, ServerView, StatusView } from './snapshot.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_BAD_INPUT = 2;

export interface TargetOptions {
  admin?: string;
  token?: string;
  config?: string;
  json?: boolean;
}

export interface Target {
  url: string;
  token?: string;
}

export async function resolveTarget(opts: TargetOptions): Promise<Target> {
  let url = opts.admin ?? process.env.FULCRUM_ADMIN;
  let token = opts.token ?? process.env.FULCRUM_ADMIN_TOKEN;
  // -c FILE, else ./fulcrum.yaml when present (only when no address was given otherwise).
  const file = url === undefined ? configOrDefault(opts.config) : undefined;
  if (file !== undefined) {
    const admin = (await loadConfig(file)).admin;
    if (admin === undefined) throw new UsageError(`${file} has no admin section (add admin.listen)`);
    const host =
      admin.listen.host === '0.0.0.0' ? '127.0.0.1' : admin.listen.host === '::' ? '::1' : admin.listen.host;
    url = `http://${host.includes(':') ? `[${host}]` : host}:${admin.listen.port}`;
    token ??= admin.token;
  }
  url ??= 'http://127.0.0.1:9000';
  if (!/^https?:\/\//.test(url)) url = `http://${url}`;
  if (!URL.canParse(url))
    throw new UsageError(`--admin: expected a URL like http://127.0.0.1:9000, got ${JSON.stringify(url)}`);
  return { url: url.replace(/\/+$/, ''), ...(token === undefined ? {} : { token }) };
}

export class UsageError extends Error {}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

export async function call(target: Target, method: string, path: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${target.url}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(120_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(
      `cannot reach the admin API at ${target.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
    );
  }
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { error: text.trim() || res.statusText };
  }
  return { status: res.status, body: parsed };
}

/** Runs one API call for a command: prints the outcome (or the JSON answer with --json), returns the exit status. */
export async function run(
  opts: TargetOptions,
  method: string,
  path: string,
  body: unknown,
  describe: (answer: Record<string, unknown>) => string,
): Promise<number> {
  let answer: Answer;
  try {
    answer = await call(await resolveTarget(opts), method, path, body);
  } catch (err) {
    process.stderr.write(`fulcrum: ${(err as Error).message}\n`);
    return err instanceof UsageError || err instanceof ConfigError ? EXIT_BAD_INPUT : EXIT_FAILED;
  }
  if (answer.status >= 400) {
    process.stderr.write(`fulcrum: ${String(answer.body.error ?? `HTTP ${answer.status}`)}\n`);
    return [400, 404, 405, 409, 413].includes(answer.status) ? EXIT_BAD_INPUT : EXIT_FAILED;
  }
  process.stdout.write(
    opts.json ? `${JSON.stringify(answer.body, null, 2)}\n` : `${describe(answer.body)}\n`,
  );
  return EXIT_OK;
}

const seg = encodeURIComponent;

export function status(opts: TargetOptions): Promise<number> {
  return run(opts, 'GET', '/api/status', undefined, (b) => formatStatus(b as unknown as StatusView));
}

export function reload(opts: TargetOptions): Promise<number> {
  return run(
    opts,
    'POST',
    '/api/reload',
    undefined,
    (b) => `reloaded: ${describeReload(b as unknown as ReloadResult)}`,
  );
}

export type ServerAction = 'add' | 'drain' | 'ready' | 'maintenance' | 'weight' | 'remove';

export interface ServerArgs {
  pool: string;
  server?: string;
  address?: string;
  name?: string;
  weight?: string;
  backup?: boolean;
  wait?: boolean;
  timeout?: string;
}

export function server(action: ServerAction, args: ServerArgs, opts: TargetOptions): Promise<number> {
  const base = `/api/pools/${seg(args.pool)}/servers`;
  const one = `${base}/${seg(args.server ?? '')}`;
  const line = (b: Record<string, unknown>) => {
    const s = b as unknown as ServerView & { note?: string };
    return `pool ${args.pool}: server ${s.id} (${s.address}) state ${s.state}, weight ${s.weight}${s.note ? ` (${s.note})` : ''}`;
  };
  switch (action) {
    case 'add': {
      const body: Record<string, unknown> = { address: args.address };
      if (args.name !== undefined) body.name = args.name;
      if (args.weight !== undefined) body.weight = numberOrText(args.weight);
      if (args.backup) body.backup = true;
      return run(opts, 'POST', base, body, (b) => `${line(b)}: added`);
    }
    case 'drain':
    case 'ready':
    case 'maintenance':
      return run(opts, 'PATCH', one, { state: action }, line);
    case 'weight':
      return run(opts, 'PATCH', one, { weight: numberOrText(args.weight ?? '') }, line);
    case 'remove': {
      const query = new URLSearchParams();
      if (args.wait !== false) query.set('wait', 'true');
      if (args.timeout !== undefined) query.set('timeout', args.timeout);
      return run(opts, 'DELETE', `${one}?${query}`, undefined, (b) =>
        b.removed === true
          ? `pool ${args.pool}: server ${String(b.server)} removed`
          : `pool ${args.pool}: server ${String(b.server)} draining (${String(b.active)} in flight), removed once drained`,
      );
    }
  }
}

/** "5" → 5, so that the API's validation sees what the user typed as a YAML file would. */
function numberOrText(text: string): number | string {
  return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
}

// ------------------------------------------------------------------------------------ printing

export function formatStatus(s: StatusView): string {
  const out: string[] = [];
  for (const l of s.listeners) {
    if (l.zones !== undefined) {
      const zones = l.zones.map((z) => `${z.name} (pools ${z.pools.join(', ')})`).join(', ');
      out.push(
        `listener ${l.name}  ${l.protocol}  ${l.listen}  → zones ${zones}  ${l.connections} connection(s), ${l.requests} quer${l.requests === 1 ? 'y' : 'ies'}`,
      );
      continue;
    }
    const t = l.totals;
    out.push(
      `listener ${l.name}  ${l.protocol}  ${l.listen}  → pool ${l.pool}  ${l.connections} connection(s), ${l.requests} request(s), ${t.errors4xx} 4xx, ${t.errors5xx} 5xx, ${t.retries} retries, in ${formatBytes(t.bytesIn)}, out ${formatBytes(t.bytesOut)}`,
    );
  }
  for (const p of s.pools) out.push('', ...formatPool(p));
  if (s.workers !== undefined) out.push('', ...formatWorkers(s.workers));
  return out.join('\n');
}

/** A supervisor's workers (`workers` > 1): one row each. */
function formatWorkers(workers: WorkerRow[]): string[] {
  const rows = [['WORKER', 'PID', 'STATE', 'UPTIME', 'RESTARTS', 'ACTIVE', 'REQ/S']];
  for (const w of workers) {
    rows.push([
      String(w.id),
      String(w.pid),
      w.state,
      `${w.uptimeSeconds}s`,
      String(w.restarts),
      String(w.connections),
      String(w.requestsPerSecond),
    ]);
  }
  const total = workers.reduce((n, w) => n + w.requestsPerSecond, 0);
  return [`workers ${workers.length}  ${Math.round(total * 10) / 10} req/s`, ...table(rows)];
}

function formatPool(p: PoolView): string[] {
  const head = `pool ${p.name}  ${p.algorithm}  ${p.requestRate} req/s${p.healthCheck ? `  health: ${p.healthCheck}` : ''}`;
  const rows = [
    [
      'SERVER',
      'ADDRESS',
      'STATE',
      'WEIGHT',
      'ACTIVE',
      'REQ/S',
      'SHARE',
      'P50',
      'P99',
      'HEALTH',
      'LAST CHANGE',
    ],
  ];
  for (const s of p.servers) {
    const state = `${s.state}${s.removing ? ' (removing)' : ''}${s.ejected ? ' (ejected)' : ''}${s.backup ? ' (backup)' : ''}`;
    const t = s.lastTransition;
    rows.push([
      s.id,
      s.address,
      state,
      String(s.weight),
      String(s.active),
      String(s.requestRate),
      `${Math.round(s.share * 100)}%`,
      s.latencyMs ? `${s.latencyMs.p50}ms` : '-',
      s.latencyMs ? `${s.latencyMs.p99}ms` : '-',
      s.health ? `${s.health.ok ? 'ok' : 'FAIL'}: ${s.health.lastResult}` : '-',
      t ? `${t.from}→${t.to}: ${t.reason}` : '-',
    ]);
  }
  // Totals since the admin endpoint started, in a second table to keep lines readable.
  const traffic = [['SERVER', 'TOTAL', '4XX', '5XX', 'RETRIES', 'IN', 'OUT', 'IDLE CONNS']];
  for (const s of p.servers) {
    const t = s.totals;
    traffic.push([
      s.id,
      String(t.requests),
      String(t.errors4xx),
      String(t.errors5xx),
      String(t.retries),
      formatBytes(t.bytesIn),
      formatBytes(t.bytesOut),
      String(s.idleConnections),
    ]);
  }
  return [head, ...table(rows), ...table(traffic)];
}

/** Rows as columns padded to their widest cell, indented by two spaces. */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map(
    (r) =>
      `  ${r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}`,
  );
}

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/**
 * `fulcrum health`: asks a running balancer's admin endpoint whether it serves (`GET /ready`, see
 * readiness.ts) and turns the answer into an exit status, for keepalived's `track_script`,
 * systemd and container probes: 0 ready (the reason on stdout), 1 not ready or unreachable (one
 * line on stderr saying why), 2 bad input (an invalid config file or option).
 *
 * Which balancer: as for `fulcrum status` (`--admin URL`, $FULCRUM_ADMIN, `admin.listen` of
 * `-c FILE`). `--admin` skips reading the file: a probe then keeps answering for the running
 * balancer while the file is being edited.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ConfigError } from '../config/errors.js';
import type { TargetOptions } from './client.js';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_BAD_INPUT = 2;

/** How long the probe waits for the admin endpoint by default, ms. */
export const DEFAULT_PROBE_TIMEOUT_MS = 2000;

/** The options of `fulcrum health`. */
export interface ProbeOptions extends TargetOptions {
  /** Usable servers each listener's default pool needs (default: the endpoint's, 1). */
  minServers?: number;
  /** Give up after this long, ms. */
  timeoutMs?: number;
}

/** Runs the probe, prints its one line, returns the exit status. */
export async function health(opts: ProbeOptions): Promise<number> {
  let url: string;
  try {
    url = await targetUrl(opts);
  } catch (err) {
    process.stderr.write(`fulcrum health: ${(err as Error).message}\n`);
    const { UsageError } = await import('./client.js');
    return err instanceof UsageError || err instanceof ConfigError ? EXIT_BAD_INPUT : EXIT_FAILED;
  }
  const query = opts.minServers === undefined ? '' : `?minServers=${opts.minServers}`;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  let status: number;
  let body: { ready?: unknown; reason?: unknown; error?: unknown };
  try {
    const answer = await get(`${url}/ready${query}`, timeoutMs);
    status = answer.status;
    try {
      body = JSON.parse(answer.text) as typeof body;
    } catch {
      body = { error: answer.text.trim().slice(0, 200) || `HTTP ${status}` };
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`not ready: cannot reach the admin API at ${url}: ${e.code ?? e.message}\n`);
    return EXIT_FAILED;
  }
  if (status === 200 && body.ready === true) {
    process.stdout.write(`${String(body.reason ?? 'ready')}\n`);
    return EXIT_OK;
  }
  if (status === 503 && typeof body.reason === 'string') {
    process.stderr.write(`not ready: ${body.reason}\n`);
    return EXIT_FAILED;
  }
  const what = typeof body.error === 'string' ? body.error : `HTTP ${status}`;
  process.stderr.write(`not ready: ${url}/ready answered ${status}: ${what}\n`);
  return status === 400 ? EXIT_BAD_INPUT : EXIT_FAILED;
}

/**
 * The admin URL: `--admin` (or $FULCRUM_ADMIN) as given, without loading the config machinery
 * (a probe runs every second); else resolved from the config file as `fulcrum status` does.
 */
async function targetUrl(opts: ProbeOptions): Promise<string> {
  const given = opts.admin ?? process.env.FULCRUM_ADMIN;
  if (given !== undefined) {
    const url = /^https?:\/\//.test(given) ? given : `http://${given}`;
    if (URL.canParse(url)) return url.replace(/\/+$/, '');
  }
  const { resolveTarget } = await import('./client.js');
  return (await resolveTarget(opts)).url;
}

/**
 * One GET on its own connection, closed after the answer (node:http, not fetch: fetch keeps the
 * connection for reuse, and the process then lingered about two seconds before exiting).
 */
function get(url: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(
      url,
      { agent: false, headers: { accept: 'application/json', connection: 'close' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text.length < 65_536) text += chunk;
        });
        res.on('error', reject);
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, text });
        });
      },
    );
    const timer = setTimeout(
      () => req.destroy(Object.assign(new Error(`no answer in ${timeoutMs} ms`), { code: undefined })),
      timeoutMs,
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

/** A balancer with its admin endpoint, in this process, for the admin tests. */

import { type AdminOptions, type RunningAdmin, startAdmin } from '../../src/admin/index.js';
import { loadConfig } from '../../src/config/index.js';
import type { AdminConfig } from '../../src/config/types.js';
import type { RunningBackend } from '../../src/demo/backend.js';
import { Runtime } from '../../src/runtime/runtime.js';
import {
  memoryLogger,
  type Reply,
  request,
  serverList,
  startBackends,
  startBalancer,
  type TestBalancer,
} from '../helpers/balancer.js';
import { tempDir } from '../helpers/processes.js';

export const LOOPBACK: AdminConfig = { listen: { host: '127.0.0.1', port: 0, text: '127.0.0.1:0' } };

export interface Lab {
  backends: RunningBackend[];
  lb: TestBalancer;
  admin: RunningAdmin;
  /** The admin port. */
  port: number;
  stop(): Promise<void>;
}

/** n sample backends (a, b, ...) behind listener "web" → pool "web", plus the admin endpoint. */
export async function startLab(
  n = 3,
  options: {
    poolExtra?: string;
    delayMs?: number;
    admin?: Partial<AdminConfig>;
    adminOptions?: AdminOptions;
  } = {},
): Promise<Lab> {
  const backends = await startBackends(n, options.delayMs ?? 0);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    servers:
${serverList(backends)}
${options.poolExtra ?? ''}
`);
  const admin = await startAdmin(lb.runtime, { ...LOOPBACK, ...options.admin }, lb.log, {
    intervalMs: 200,
    ...options.adminOptions,
  });
  return {
    backends,
    lb,
    admin,
    port: admin.address.port,
    async stop() {
      await admin.close();
      await lb.stop();
      await Promise.all(backends.map((b) => b.close().catch(() => {})));
    },
  };
}

/** A balancer started from a real config file in a temp dir (for reloads and the state file). */
export async function startFromFile(yaml: string, name = 'fulcrum.yaml') {
  const dir = tempDir('fulcrum-admin-');
  const file = dir.write(name, yaml);
  const log = memoryLogger();
  const runtime = new Runtime(await loadConfig(file), { file, log });
  await runtime.start();
  return { dir, file, log, runtime };
}

export interface JsonReply extends Reply {
  data: Record<string, unknown> & { error?: string; problems?: Array<{ path: string; message: string }> };
}

/** One admin API call; the body is sent as JSON (a string is sent as is). */
export async function api(
  port: number,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<JsonReply> {
  const reply = await request(port, {
    method,
    path,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  let data: JsonReply['data'] = {};
  if ((reply.headers['content-type'] ?? '').includes('json')) data = JSON.parse(reply.body);
  return { ...reply, data };
}

/** `count` requests through the proxy; returns the x-served-by of each. */
export async function traffic(port: number, count: number, path = '/whoami'): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = await request(port, { path });
    seen.push(String(r.headers['x-served-by'] ?? r.status));
  }
  return seen;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true (or throws after `timeoutMs`). */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/**
 * A keepalived active/standby pair of balancers in network namespaces, as the lab's redundancy
 * scenario and the redundancy test build it: on one bridge, two balancer hosts (`lb1`, `lb2`), each
 * running `fulcrum start` and keepalived with `fulcrum health` as its track_script, three sample
 * backends (`app1`–`app3`), a Redis host (`redis`) and a client host (`client`) running the
 * cookie-jar client (vipClient.ts). `buildPair()` starts it all; `close()` stops every process by
 * PID and deletes every namespace (with the bridge), also when the build fails halfway, where
 * buildPair() calls it before it throws.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { keepalivedConf, keepalivedPath } from './keepalived.js';
import { type HostProcess, Network, namespacesUnavailable, prefixOf, removeStale } from './netns.js';
import { CLI, sleep } from './processes.js';
import type { ClientRecord } from './vipClient.js';

/** One of the two balancer hosts. */
export type Lb = 'lb1' | 'lb2';

/** The admin endpoint of each balancer (inside its own host). */
const ADMIN = 'http://127.0.0.1:9000';
const CLIENT_SCRIPT = fileURLToPath(new URL('./vipClient.js', import.meta.url));
/** The client's pause between two requests of one user and its request timeout, ms. */
const CLIENT_PAUSE_MS = 200;
const CLIENT_TIMEOUT_MS = 1000;

/** How to build a pair. */
export interface PairOptions {
  /** The namespaces are named `<letters><PID>-<host>`; a crashed run's are removed first. */
  letters: string;
  /**
   * The first three numbers of the hosts' /24 (e.g. `10.78.0`): virtual IP .10, balancers .11
   * and .12, backends .21 to .23, Redis .30, client .100.
   */
  subnet: string;
  /** A folder of the caller's for the configs, PID files and Redis's folder (the caller removes it). */
  dir: string;
  /** How many cookie-jar users the client simulates. */
  users: number;
  /** Sticky table and sessions in Redis (true) or in each process's memory, as the pair starts. */
  shared: boolean;
  /** Adds a per-IP rate limit to the listener (its counters in Redis too when shared). */
  rateLimit?: boolean;
  /** Seconds between two runs of keepalived's track_script (default 1, as documented). */
  scriptInterval?: number;
  /** Seconds keepalived lets one run of the script take (default 3, as documented). */
  scriptTimeout?: number;
}

/** What one move of the virtual IP did to the users. */
export interface Move {
  /** From the action to the first answer to a request sent after the last failure, seconds. */
  takeoverS: number;
  /** From the action to the new holder's keepalived entering MASTER, seconds. */
  vipS: number;
  failed: number;
  /** The failures by kind, e.g. " (ECONNREFUSED 30, timeout 8)". */
  kinds: string;
  sessionsLost: number;
  serverChanged: number;
}

/** Why a pair cannot be built here (no root or namespaces, no keepalived, no redis-server), or undefined. */
export function pairUnavailable(): string | undefined {
  const ns = namespacesUnavailable();
  if (ns !== undefined) return ns;
  if (keepalivedPath(fs.existsSync) === undefined)
    return 'keepalived is not installed (apt-get install keepalived)';
  if (spawnSync('redis-server', ['--version']).status !== 0) return 'redis-server is not installed';
  return undefined;
}

/** Resolves once `check()` holds (polled every 50 ms); rejects after `timeoutMs`. */
export async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** " (ECONNREFUSED 3, timeout 1)": failed requests by kind ('' for none). */
export function failureKinds(failed: readonly ClientRecord[]): string {
  const kinds = new Map<string, number>();
  for (const r of failed) kinds.set(r.err ?? '?', (kinds.get(r.err ?? '?') ?? 0) + 1);
  return kinds.size === 0 ? '' : ` (${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')})`;
}

/** A built pair: its hosts, processes, what the client saw and what keepalived logged. */
export class Pair {
  readonly net: Network;
  readonly vip: string;
  readonly lbs: Readonly<Record<Lb, string>>;
  readonly apps: readonly string[];
  readonly redisUrl: string;
  readonly users: number;
  /** Every request the client has finished, in order. */
  readonly records: ClientRecord[] = [];
  /** Each time a keepalived entered MASTER, with when its line was read. */
  readonly masters: Array<{ lb: Lb; at: number }> = [];
  /** Each keepalived's VRRP state as it last logged it (polling `ip addr` would fork 20 times a second). */
  readonly vrrp = new Map<Lb, string>();
  readonly fulcrums = new Map<Lb, HostProcess>();
  readonly keepaliveds = new Map<Lb, HostProcess>();
  backends: HostProcess[] = [];
  client: HostProcess | undefined;
  private acks = 0;
  private commands = 0;
  private readonly keepalived: string;
  // The lab runner's SIGINT/SIGTERM handlers exit the process: this then removes the namespaces.
  private readonly removeNow = () => this.net.removeNow();

  /** Nothing is created yet: buildPair() does that. */
  constructor(readonly options: PairOptions) {
    const keepalived = keepalivedPath(fs.existsSync);
    if (keepalived === undefined) throw new Error('keepalived is not installed');
    this.keepalived = keepalived;
    const n = options.subnet;
    this.vip = `${n}.10`;
    this.lbs = { lb1: `${n}.11`, lb2: `${n}.12` };
    this.apps = [`${n}.21`, `${n}.22`, `${n}.23`];
    this.redisUrl = `redis://${n}.30:6379`;
    this.users = options.users;
    this.net = new Network(prefixOf(options.letters));
    process.on('exit', this.removeNow);
  }

  /** The balancer whose keepalived is MASTER (callers that assert it confirm with `net.holds`). */
  holder(): Lb | undefined {
    return (['lb1', 'lb2'] as const).find((lb) => this.vrrp.get(lb) === 'MASTER');
  }

  /** Starts `fulcrum start` on `lb` (stick table in Redis or in memory) and waits for its listener. */
  async startFulcrum(lb: Lb, shared: boolean): Promise<void> {
    const file = this.write(`${lb}-${shared ? 'shared' : 'local'}.yaml`, this.fulcrumYaml(shared));
    const p = this.net.run(lb, [process.execPath, CLI, 'start', '-c', file]);
    this.fulcrums.set(lb, p);
    await p.waitFor(/listener web: http on 0\.0\.0\.0:80/, 45_000);
  }

  /** Starts keepalived on `lb` (lb1 priority 150, lb2 100) and follows its VRRP state. */
  startKeepalived(lb: Lb, nopreempt: boolean): HostProcess {
    const other: Lb = lb === 'lb1' ? 'lb2' : 'lb1';
    const conf = this.write(
      `keepalived-${lb}-${nopreempt ? 'nopreempt' : 'preempt'}.conf`,
      keepalivedConf({
        routerId: `fulcrum-${lb}`,
        iface: 'eth0',
        address: this.lbs[lb],
        peer: this.lbs[other],
        priority: lb === 'lb1' ? 150 : 100,
        vip: `${this.vip}/24`,
        healthCommand: `${process.execPath} ${CLI} health --admin ${ADMIN}`,
        nopreempt,
        scriptInterval: this.options.scriptInterval,
        scriptTimeout: this.options.scriptTimeout,
      }),
    );
    const pid = (what: string) => path.join(this.options.dir, `${lb}-${what}.pid`);
    const k = this.net.run(lb, [
      this.keepalived,
      '--dont-fork',
      '--log-console',
      '--log-detail',
      '--no-syslog',
      '--vrrp',
      '-f',
      conf,
      '-p',
      pid('keepalived'),
      '-r',
      pid('vrrp'),
      '-c',
      pid('checkers'),
    ]);
    k.onLine = (line, at) => {
      const entered = /Entering (\w+) STATE/.exec(line);
      if (entered === null) return;
      this.vrrp.set(lb, entered[1]!);
      if (entered[1] === 'MASTER') this.masters.push({ lb, at });
    };
    this.keepaliveds.set(lb, k);
    return k;
  }

  /** (Re)starts the three sample backends with their sessions in `store` (a Redis URL or `memory`). */
  async startBackends(store: string): Promise<void> {
    await Promise.all(this.backends.map((b) => b.stop()));
    this.backends = this.apps.map((address, i) =>
      this.net.run(`app${i + 1}`, [
        process.execPath,
        CLI,
        'backend',
        '--host',
        address,
        '--port',
        '8080',
        '--id',
        `app${i + 1}`,
        '--session-store',
        store,
      ]),
    );
    await Promise.all(this.backends.map((b) => b.waitFor(/listening on/, 45_000)));
  }

  /** Sends a command to the client (see vipClient.ts) and waits for its acknowledgement. */
  async tell(command: Record<string, unknown>): Promise<void> {
    const n = ++this.commands;
    this.client!.child.stdin!.write(`${JSON.stringify(command)}\n`);
    await until(`the client's ack of ${JSON.stringify(command)}`, () => this.acks >= n, 10_000);
  }

  /** Waits until every user has had `n` answers to requests sent since `since`. */
  async answered(n: number, since: number, timeoutMs = 20_000): Promise<void> {
    await until(
      `${n} answers for every user`,
      () => {
        const per = new Array<number>(this.users).fill(0);
        for (const r of this.records) if (r.ok && r.start >= since) per[r.u]!++;
        return per.every((c) => c >= n);
      },
      timeoutMs,
    );
  }

  /**
   * Runs `action` on steady traffic to the virtual IP and measures the move it causes, once `to`
   * holds the address and every user has had two answers since.
   */
  async move(action: () => void | Promise<void>, to: Lb): Promise<Move> {
    const t0 = Date.now();
    await action();
    await until(`the virtual IP on ${to}`, () => this.holder() === to, 30_000);
    const vipS = ((this.masters.findLast((m) => m.lb === to)?.at ?? Date.now()) - t0) / 1000;
    if (!this.net.holds(to, this.vip)) throw new Error(`${to} is MASTER but does not hold ${this.vip}`);
    await this.answered(2, t0, 30_000);
    const after = this.records.filter((r) => r.end >= t0);
    // Back once a request sent after the last failed one is answered (the action itself takes a
    // moment: a request may still get through just after t0).
    const failures = after.filter((r) => !r.ok);
    const lastFailure = Math.max(t0, ...failures.map((r) => r.start));
    const firstOk = Math.min(...after.filter((r) => r.ok && r.start >= lastFailure).map((r) => r.end));
    let sessionsLost = 0;
    let serverChanged = 0;
    for (let u = 0; u < this.users; u++) {
      const mine = this.records.filter((r) => r.u === u && r.ok).sort((a, b) => a.end - b.end);
      const before = mine.filter((r) => r.end < t0).at(-1);
      const next = mine.find((r) => r.end >= t0);
      if (before === undefined || next === undefined) continue;
      if (next.count! <= before.count!) sessionsLost++;
      if (next.server !== before.server) serverChanged++;
    }
    return {
      takeoverS: (firstOk - t0) / 1000,
      vipS,
      failed: failures.length,
      kinds: failureKinds(failures),
      sessionsLost,
      serverChanged,
    };
  }

  /** Stops every process by PID and deletes every namespace and the bridge. Never throws. */
  async close(): Promise<void> {
    await this.net.remove();
    process.off('exit', this.removeNow);
  }

  /** Adds the hosts and starts Redis, the backends, both balancers, both keepaliveds and the client. */
  async build(): Promise<void> {
    removeStale(this.options.letters);
    for (const [name, address] of [
      ['lb1', this.lbs.lb1],
      ['lb2', this.lbs.lb2],
      ['app1', this.apps[0]!],
      ['app2', this.apps[1]!],
      ['app3', this.apps[2]!],
      ['redis', `${this.options.subnet}.30`],
      ['client', `${this.options.subnet}.100`],
    ] as const) {
      this.net.addHost(name, address);
    }
    const redis = this.net.run('redis', [
      'redis-server',
      '--bind',
      this.net.host('redis').address,
      '--port',
      '6379',
      '--protected-mode',
      'no',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.options.dir,
    ]);
    await redis.waitFor(/Ready to accept connections/, 45_000);
    const shared = this.options.shared;
    await this.startBackends(shared ? this.redisUrl : 'memory');
    await Promise.all([this.startFulcrum('lb1', shared), this.startFulcrum('lb2', shared)]);
    this.startKeepalived('lb1', true);
    this.startKeepalived('lb2', true);
    const client = this.net.run('client', [
      process.execPath,
      CLIENT_SCRIPT,
      String(this.users),
      String(CLIENT_PAUSE_MS),
      String(CLIENT_TIMEOUT_MS),
    ]);
    client.onLine = (line) => {
      if (!line.startsWith('{')) return;
      const parsed = JSON.parse(line) as ClientRecord | { ack: number };
      if ('ack' in parsed) this.acks = parsed.ack;
      else this.records.push(parsed);
    };
    this.client = client;
  }

  /** The balancers' config: learned stick table (and rate-limit counters) in Redis, or not. */
  private fulcrumYaml(shared: boolean): string {
    const servers = this.apps.map((a, i) => `      - { address: "${a}:8080", name: app${i + 1} }`).join('\n');
    const protection = this.options.rateLimit
      ? `    protection:
      rateLimit: { requests: 100000, per: 10s, key: ip }
${shared ? `      shared: ${this.redisUrl}\n` : ''}`
      : '';
    return `admin: { listen: "127.0.0.1:9000" }
listeners:
  - name: web
    protocol: http
    listen: "0.0.0.0:80"
    pool: web
${protection}pools:
  - name: web
    servers:
${servers}
    healthCheck: { type: http, path: /health, interval: 2s, timeout: 1s, rise: 1, fall: 2 }
    sticky: { type: cookie, mode: learn, cookie: fulcrum.sid, store: ${shared ? `"${this.redisUrl}"` : 'memory'} }
`;
  }

  private write(name: string, text: string): string {
    const file = path.join(this.options.dir, name);
    fs.writeFileSync(file, text);
    return file;
  }
}

/**
 * Builds a pair: hosts, Redis, backends, both balancers with keepalived (both nopreempt, lb1 the
 * higher priority) and the client, which sends nothing until told its targets. Returns once every
 * process has started; keepalived's election is the caller's to wait for (`holder()`). When any
 * step fails, everything made so far is removed before the error is thrown.
 */
export async function buildPair(options: PairOptions): Promise<Pair> {
  const pair = new Pair(options);
  try {
    await pair.build();
  } catch (err) {
    await pair.close();
    throw err;
  }
  return pair;
}

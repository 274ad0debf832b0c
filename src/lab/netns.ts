/**
 * A small network of hosts for the lab and the tests, each host a network namespace with its own address on one
 * bridge (iproute2): nothing is added to the test machine's own namespace, so fixed ports inside
 * a host are always free. Processes run in a host with `ip netns exec` (which execs the command:
 * the PID we hold is the process's). `remove()` stops every process left in the hosts by PID and
 * deletes the namespaces (the bridge and the links go with them); names carry the test's PID, so
 * a crashed run does not collide with the next one.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

/** Why namespaces cannot be used here, or undefined when they can. */
export function namespacesUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root (CAP_NET_ADMIN); run as root';
  const name = `fulcrum-probe-${process.pid}`;
  const made = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (made.error !== undefined) return `iproute2's ip is missing (${made.error.message})`;
  if (made.status !== 0) return `cannot create a network namespace: ${made.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', name]);
  return undefined;
}

/** Runs `ip ARGS...`; throws with its stderr when it fails. */
export function ip(...args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
  return r.stdout;
}

/** A process running in a host: its output kept, waited on by pattern, stopped by PID. */
export class HostProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  output = '';
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<void>;
  private readonly watchers = new Set<() => void>();
  /** Told of every line of output, as it comes (with the time it was read). */
  onLine: ((line: string, at: number) => void) | undefined;
  private partial = '';

  constructor(
    readonly host: string,
    readonly command: readonly string[],
  ) {
    this.child = spawn('ip', ['netns', 'exec', host, ...command], { stdio: ['pipe', 'pipe', 'pipe'] });
    if (this.child.pid === undefined) throw new Error(`could not start ${command.join(' ')} in ${host}`);
    this.pid = this.child.pid;
    const read = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.output += text;
      if (this.output.length > 1_000_000) this.output = this.output.slice(-500_000);
      const lines = (this.partial + text).split('\n');
      this.partial = lines.pop() ?? '';
      const at = Date.now();
      for (const line of lines) this.onLine?.(line, at);
      for (const w of [...this.watchers]) w();
    };
    this.child.stdout?.on('data', read);
    this.child.stderr?.on('data', read);
    this.child.stdin?.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        for (const w of [...this.watchers]) w();
        resolve();
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Resolves once `pattern` shows in the output; rejects if the process exits first or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pattern.test(this.output)) finish();
        else if (this.exit !== undefined) finish(new Error(`${this.describe()} exited before ${pattern}`));
      };
      const timer = setTimeout(
        () => finish(new Error(`${this.describe()}: no ${pattern} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.watchers.delete(check);
        if (err === undefined) resolve();
        else reject(new Error(`${err.message}\n${this.output.slice(-3000)}`));
      };
      this.watchers.add(check);
      check();
    });
  }

  /** Sends `signal` to the PID; waits for the exit, SIGKILL after `killAfterMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 5000): Promise<void> {
    if (this.exit !== undefined) return;
    this.signal(signal);
    const timer = setTimeout(() => this.signal('SIGKILL'), killAfterMs);
    await this.exited;
    clearTimeout(timer);
  }

  signal(signal: NodeJS.Signals): void {
    if (this.exit !== undefined) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  private describe(): string {
    return `${this.command.join(' ')} (in ${this.host})`;
  }
}

/**
 * Deletes what a crashed run left: namespaces named `<letters><PID>-...` (as `prefixOf` makes
 * them) whose PID is no longer a running process, after killing the processes still in them by
 * PID. Namespaces of a run still going (its PID alive) are left alone.
 */
export function removeStale(letters: string): void {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  const pattern = new RegExp(`^${letters}(\\d+)-\\S+`);
  for (const line of list.split('\n')) {
    const m = pattern.exec(line);
    if (m === null) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || alive(owner)) continue;
    const ns = m[0];
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
    for (const pid of pids.split('\n').filter((p) => /^\d+$/.test(p))) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The prefix of this process's namespaces: `letters` and the PID. */
export function prefixOf(letters: string): string {
  return `${letters}${process.pid}`;
}

/** One host of a Network: a namespace with `eth0` at `address`/24 on the bridge. */
export interface Host {
  readonly name: string;
  /** The namespace's name. */
  readonly ns: string;
  readonly address: string;
}

/** Hosts on one bridge (itself in a namespace of its own), all removed by remove(). */
export class Network {
  readonly hosts = new Map<string, Host>();
  private readonly processes: HostProcess[] = [];
  private readonly namespaces: string[] = [];
  private readonly prefix: string;
  private readonly switchNs: string;

  /**
   * `prefix` names the namespaces (`PREFIX-switch`, `PREFIX-NAME`): make it unique (the PID).
   * Nothing is created before the first addHost().
   */
  constructor(prefix: string) {
    this.prefix = prefix;
    this.switchNs = `${prefix}-switch`;
  }

  /** A new host `name` with `address` (a /24 on the bridge). */
  addHost(name: string, address: string): Host {
    if (this.namespaces.length === 0) {
      this.addNamespace(this.switchNs);
      ip('-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', this.switchNs, 'link', 'set', 'br0', 'up');
    }
    const ns = `${this.prefix}-${name}`;
    this.addNamespace(ns);
    // Created in the switch namespace, its peer moved straight into the host's: nothing is ever
    // created in the machine's own namespace.
    const port = `p-${name}`.slice(0, 15);
    ip('-n', this.switchNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('-n', this.switchNs, 'link', 'set', port, 'master', 'br0', 'up');
    ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    const host = { name, ns, address };
    this.hosts.set(name, host);
    return host;
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (h === undefined) throw new Error(`no host ${name}`);
    return h;
  }

  /** Starts `command` in host `name`. */
  run(name: string, command: readonly string[]): HostProcess {
    const p = new HostProcess(this.host(name).ns, command);
    this.processes.push(p);
    return p;
  }

  /** `ip ARGS` in host `name` (e.g. link set eth0 down). */
  ip(name: string, ...args: string[]): string {
    return ip('-n', this.host(name).ns, ...args);
  }

  /** Whether host `name` holds `address` on eth0 now. */
  holds(name: string, address: string): boolean {
    return this.ip(name, '-o', 'addr', 'show', 'dev', 'eth0').includes(` ${address}/`);
  }

  /**
   * Stops the processes started here (SIGTERM, SIGKILL after 3 s), then any other process still
   * in the hosts (keepalived's children, scripts) by PID, and deletes the namespaces. Never throws.
   */
  async remove(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop('SIGTERM', 3000).catch(() => {})));
    for (const ns of this.namespaces) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
      for (const pid of pids.split('\n').filter((p) => /^\d+$/.test(p))) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    for (const ns of this.namespaces.reverse()) spawnSync('ip', ['netns', 'del', ns]);
    this.namespaces.length = 0;
  }

  /**
   * Synchronous last resort (exit and signal handlers): SIGKILL by PID every process in the
   * hosts, delete the namespaces. Never throws.
   */
  removeNow(): void {
    for (const ns of this.namespaces) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
      for (const pid of pids.split('\n').filter((p) => /^\d+$/.test(p))) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    for (const ns of this.namespaces.reverse()) spawnSync('ip', ['netns', 'del', ns]);
    this.namespaces.length = 0;
  }

  private addNamespace(ns: string): void {
    // Listed first: remove() then deletes it even if `ip netns add` half failed.
    this.namespaces.push(ns);
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
}

/**
 * A real server process for tests (redis-server, memcached, ...): started on a free loopback
 * port, waited for until it answers, stopped by its PID, restartable on the same port. Every
 * wait is bounded, and whatever is still running when the test process exits is killed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

/** A port nobody listens on right now (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Sends `request` over TCP and resolves true when the answer starts with `expect`. */
export function tcpAsk(port: number, request: string, expect: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      if (answer.length >= expect.length) done(answer.startsWith(expect));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

export interface ServerProcessSpec {
  /** For messages, e.g. `redis-server`. */
  name: string;
  command: string;
  args(port: number): string[];
  /** Resolves true once the server answers on `port`. */
  ping(port: number): Promise<boolean>;
  /** A fixed port; default: a free one (retried if another process takes it first). */
  port?: number;
  startTimeoutMs?: number;
}

export interface ServerProcess {
  readonly port: number;
  /** PID of the running process (changes on restart). */
  readonly pid: number;
  readonly running: boolean;
  /** Stops it (SIGTERM, SIGKILL after 3 s, or the signal given) and waits until it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port with the same arguments; resolves once it answers. */
  restart(): Promise<void>;
  /** SIGSTOP: the process keeps its port but answers nothing (a hung server); resolves once stopped. */
  pause(): Promise<void>;
  /** SIGCONT after pause(). */
  resume(): void;
}

const running = new Set<ChildProcess>();
const killAll = () => {
  for (const child of running) child.kill('SIGKILL');
};
process.on('exit', killAll);
// Interrupted (Ctrl-C, a runner's SIGTERM): 'exit' handlers would not run, so kill them here.
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(code);
  });
}

/** True when /proc says the process (and so all its threads) is stopped; false if unknown. */
function isStopped(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function launch(spec: ServerProcessSpec, port: number): Promise<ChildProcess> {
  const child = spawn(spec.command, spec.args(port), { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-2000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const deadline = Date.now() + (spec.startTimeoutMs ?? 5000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${spec.name} exited while starting on port ${port}: ${output.trim()}`);
    }
    const failed = await Promise.race([
      spawnError,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
    ]);
    if (failed) throw new Error(`${spec.name} could not be started: ${failed.message}`);
    if (await spec.ping(port)) return child;
  }
  child.kill('SIGKILL');
  await exited(child);
  throw new Error(
    `${spec.name} did not answer on port ${port} within ${spec.startTimeoutMs ?? 5000} ms: ${output.trim()}`,
  );
}

export async function startServerProcess(spec: ServerProcessSpec): Promise<ServerProcess> {
  let child: ChildProcess | undefined;
  let port = spec.port ?? 0;
  for (let attempt = 1; ; attempt++) {
    if (spec.port === undefined) port = await freePort();
    try {
      child = await launch(spec, port);
      break;
    } catch (err) {
      // A free port can be taken between our check and the server's bind: try another one.
      if (spec.port !== undefined || attempt >= 3) throw err;
    }
  }
  let current = child;
  return {
    port,
    get pid() {
      return current.pid ?? -1;
    },
    get running() {
      return current.exitCode === null && current.signalCode === null;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (current.pid === undefined || current.exitCode !== null || current.signalCode !== null) return;
      process.kill(current.pid, 'SIGCONT'); // a paused process would not act on SIGTERM
      process.kill(current.pid, signal);
      const pid = current.pid;
      const timer = setTimeout(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 3000);
      await exited(current);
      clearTimeout(timer);
    },
    async restart() {
      if (current.exitCode === null && current.signalCode === null)
        throw new Error(`${spec.name} is still running`);
      current = await launch(spec, port);
    },
    async pause() {
      const pid = current.pid;
      if (pid === undefined) return;
      process.kill(pid, 'SIGSTOP');
      // The signal takes effect asynchronously (every thread must stop): until then the server
      // may still answer. Wait until the kernel reports it stopped (state T), within a second.
      const deadline = Date.now() + 1000;
      while (Date.now() < deadline && !isStopped(pid)) await new Promise((r) => setTimeout(r, 5));
    },
    resume() {
      if (current.pid !== undefined) process.kill(current.pid, 'SIGCONT');
    },
  };
}

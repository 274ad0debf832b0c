/**
 * The lab's child processes: sample backends, balancers, redis-server and memcached, each started
 * with its own log file, tracked, and stopped by PID (SIGTERM, then SIGKILL), also when the run
 * fails or is interrupted (`killAllNow`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where every lab process listens. */
export const HOST = '127.0.0.1';

/** The `fulcrum` command of this installation (dist/src/cli/main.js). */
export const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One child process started by the lab. */
export interface LabProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Undefined while it runs; its exit code (-1 for a signal) once it has exited. */
  exitCode: number | undefined;
  readonly exited: Promise<void>;
}

/** An executable by name on PATH or in the sbin directories. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

/** A port that was free a moment ago: bind port 0, read it, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {}
}

/**
 * The processes of one lab run. `start` spawns and tracks; `stop` ends one by its PID; `stopAll`
 * ends what is left; `killAllNow` is the synchronous last resort for exit and signal handlers.
 */
export class ProcessGroup {
  readonly running = new Set<LabProcess>();
  #count = 0;

  constructor(readonly logDir: string) {
    fs.mkdirSync(logDir, { recursive: true });
  }

  /** Spawns `cmd args`, output to `<logDir>/<name>.log`. */
  start(name: string, cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): LabProcess {
    const logFile = path.join(this.logDir, `${String(++this.#count).padStart(3, '0')}-${name}.log`);
    const fd = fs.openSync(logFile, 'a');
    fs.writeSync(fd, `$ ${cmd} ${args.join(' ')}\n`);
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: env ?? process.env });
    fs.closeSync(fd);
    if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
    let resolveExit: () => void = () => {};
    const exited = new Promise<void>((r) => {
      resolveExit = r;
    });
    const proc: LabProcess = { name, pid: child.pid, child, logFile, exitCode: undefined, exited };
    const done = (code: number): void => {
      if (proc.exitCode !== undefined) return;
      proc.exitCode = code;
      this.running.delete(proc);
      resolveExit();
    };
    child.on('exit', (code) => done(code ?? -1));
    child.on('error', (err) => {
      fs.appendFileSync(logFile, `spawn error: ${err.message}\n`);
      done(-1);
    });
    this.running.add(proc);
    return proc;
  }

  /** Runs `fulcrum <args>` with this installation's CLI. */
  fulcrum(name: string, args: readonly string[]): LabProcess {
    return this.start(name, process.execPath, [CLI, ...args], {
      ...process.env,
      FULCRUM_LOG_LEVEL: 'warn',
    });
  }

  /** SIGKILL by PID, as a crash would: waits until it has exited. */
  async kill(proc: LabProcess): Promise<void> {
    if (proc.exitCode !== undefined) return;
    signalPid(proc.pid, 'SIGKILL');
    await Promise.race([proc.exited, sleep(5000)]);
  }

  /** SIGTERM by PID, then SIGKILL after `graceMs`. */
  async stop(proc: LabProcess, graceMs = 5000): Promise<void> {
    if (proc.exitCode !== undefined) return;
    signalPid(proc.pid, 'SIGTERM');
    const ended = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!ended) await this.kill(proc);
  }

  /** Stops every process still running. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.running].map((p) => this.stop(p, 3000)));
  }

  /** Synchronous SIGKILL of every process still running (exit and signal handlers). */
  killAllNow(): void {
    for (const p of this.running) signalPid(p.pid, 'SIGKILL');
  }
}

/** Poll-connect until `host:port` accepts connections; fails when `proc` exits first or time runs out. */
export async function waitForPort(
  port: number,
  proc: LabProcess,
  timeoutMs = 60_000,
  host = HOST,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== undefined) {
      throw new Error(`${proc.name} exited (code ${proc.exitCode}) before listening:\n${tail(proc.logFile)}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host, port });
      const done = (v: boolean): void => {
        sock.destroy();
        resolve(v);
      };
      sock.setTimeout(1000, () => done(false));
      sock.once('connect', () => done(true));
      sock.once('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) {
      throw new Error(
        `${proc.name} did not listen on ${port} within ${timeoutMs} ms:\n${tail(proc.logFile)}`,
      );
    }
    await sleep(50);
  }
}

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ: 100 on every Linux architecture Node runs on). */
const USER_HZ = 100;

/** Why CPU times cannot be read here (no /proc), or undefined when they can. */
export function cpuTimesUnavailable(): string | undefined {
  return fs.existsSync('/proc/self/stat') ? undefined : "needs /proc (Linux) to read a process's CPU time";
}

/** CPU time a process has used so far, user + system, in seconds (utime + stime of /proc/PID/stat). */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After "pid (comm) ", field 3 (state) comes first: utime is field 14, stime field 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

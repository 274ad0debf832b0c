/**
 * What the benchmark harnesses share: finding the project and binaries, free ports, and child
 * processes that are tracked and always stopped by PID (also when a run is interrupted).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tail } from '../src/lab/processes.js';

export const HOST = '127.0.0.1';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const log = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`);
};

/** The project root: the nearest ancestor of `from` holding a package.json. */
export function findRoot(from: string): string {
  let dir = from;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

/** This folder (dist/bench once built). */
export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
/** The project's root (the folder of package.json). */
export const ROOT = findRoot(BENCH_DIR);
/** The built Fulcrum CLI. */
export const FULCRUM_CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
/** The benchmark backend (bench/backend.ts). */
export const BACKEND_JS = path.join(BENCH_DIR, 'backend.js');

// The lab (`fulcrum lab`) starts processes the same way: one copy of these helpers, in src/lab.
export { findBinary, freePort, tail } from '../src/lab/processes.js';

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  exitCode: number | null | undefined; // undefined while running
  exited: Promise<void>;
  /** Descendants seen while sampling (nginx workers); killed too if still around at stop. */
  descendants: Set<number>;
}

/** Every child still running, for the harnesses' cleanup on exit or interruption. */
export const running = new Set<Proc>();

export function startProc(
  name: string,
  cmd: string,
  args: string[],
  logFile: string,
  /** `ipc`: open a message channel (`child.send`, `process.send` in a Node child), as fork does. */
  options: { cwd?: string; env?: NodeJS.ProcessEnv; ipc?: boolean } = {},
): Proc {
  const fd = fs.openSync(logFile, 'a');
  fs.writeSync(fd, `$ ${cmd} ${args.join(' ')}\n`);
  const child = spawn(cmd, args, {
    stdio: options.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd],
    cwd: options.cwd,
    env: options.env ?? process.env,
  });
  fs.closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not spawn ${cmd}`);
  const proc: Proc = {
    name,
    pid: child.pid,
    child,
    logFile,
    exitCode: undefined,
    exited: Promise.resolve(),
    descendants: new Set(),
  };
  proc.exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      proc.exitCode = code ?? (signal ? -1 : null);
      running.delete(proc);
      resolve();
    });
    child.on('error', (err) => {
      fs.appendFileSync(logFile, `spawn error: ${err.message}\n`);
      proc.exitCode = -1;
      running.delete(proc);
      resolve();
    });
  });
  running.add(proc);
  return proc;
}

export function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {}
}

/** SIGTERM, then SIGKILL after `graceMs`; its descendants too. */
export async function stopProc(proc: Proc, graceMs = 5000): Promise<void> {
  if (proc.exitCode === undefined) {
    killPid(proc.pid, 'SIGTERM');
    const done = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      log(`${proc.name} (pid ${proc.pid}) ignored SIGTERM for ${graceMs} ms, sending SIGKILL`);
      killPid(proc.pid, 'SIGKILL');
      await Promise.race([proc.exited, sleep(2000)]);
    }
  }
  for (const pid of proc.descendants) {
    if (fs.existsSync(`/proc/${pid}`)) killPid(pid, 'SIGKILL');
  }
}

/** Poll-connect until the port accepts connections, the process dies, or the timeout passes. */
export async function waitForPort(port: number, proc: Proc, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== undefined) {
      throw new Error(`${proc.name} exited (code ${proc.exitCode}) before listening:\n${tail(proc.logFile)}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host: HOST, port });
      const done = (v: boolean): void => {
        sock.destroy();
        resolve(v);
      };
      sock.setTimeout(500, () => done(false));
      sock.once('connect', () => done(true));
      sock.once('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) {
      throw new Error(
        `${proc.name} did not accept connections on ${port} within ${timeoutMs} ms:\n${tail(proc.logFile)}`,
      );
    }
    await sleep(50);
  }
}

/**
 * Runs a harness's `main` and exits with its code. Whatever way it ends (normally, by an error,
 * or SIGINT/SIGTERM), every process it started is killed (those in `running`, their descendants,
 * and `extraPids()`), and the temporary folder `tmp()` names, if any, is removed.
 */
export function runHarness(
  main: () => Promise<number>,
  cleanup: { tmp: () => string | undefined; extraPids?: () => Iterable<number> },
): void {
  const killAllNow = (): void => {
    for (const pid of cleanup.extraPids?.() ?? []) killPid(pid, 'SIGKILL');
    for (const proc of running) {
      killPid(proc.pid, 'SIGKILL');
      for (const pid of proc.descendants) killPid(pid, 'SIGKILL');
    }
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      log(`${sig}: stopping children`);
      killAllNow();
      process.exit(130);
    });
  }
  process.on('exit', () => {
    killAllNow();
    const tmp = cleanup.tmp();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(e);
      killAllNow();
      process.exitCode = 1;
    },
  );
}

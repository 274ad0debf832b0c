/**
 * The `fulcrum` CLI as a child process, for tests that drive it from the outside: spawn it, wait
 * for a line of output or for a port to accept, collect what it printed, and stop it by its PID
 * (SIGTERM, then SIGKILL after a bound). Every wait is bounded; whatever is still running when
 * the test process exits is killed.
 *
 * The CLI is found relative to this compiled file (`<out>/test/helpers/processes.js` →
 * `<out>/src/cli/main.js`), so the tests run the same from `dist/` and from any other outDir.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingHttpHeaders, request } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the compiled CLI entry point. */
export const CLI_PATH = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) {
    if (child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** A running `fulcrum` child process. */
export class CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout = '';
  stderr = '';
  private exitInfo: Exit | undefined;
  private readonly exitPromise: Promise<Exit>;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly args: readonly string[],
    options: SpawnOptions = {},
  ) {
    this.child = spawn(process.execPath, [CLI_PATH, ...args], {
      cwd: options.cwd ?? process.cwd(),
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (this.child.pid === undefined) throw new Error(`could not spawn fulcrum ${args.join(' ')}`);
    this.pid = this.child.pid;
    running.add(this.child);
    this.child.stdout?.setEncoding('utf8');
    this.child.stderr?.setEncoding('utf8');
    this.child.stdout?.on('data', (chunk: string) => {
      this.stdout += chunk;
      this.notify();
    });
    this.child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk;
      this.notify();
    });
    // 'close' (not 'exit'): by then stdout and stderr have been read to the end.
    this.exitPromise = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        running.delete(this.child);
        this.exitInfo = { code, signal };
        this.notify();
        resolve(this.exitInfo);
      });
    });
  }

  get exited(): boolean {
    return this.exitInfo !== undefined;
  }

  get output(): string {
    return `--- stdout ---\n${this.stdout}--- stderr ---\n${this.stderr}`;
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /**
   * Resolves with the first match of `pattern` in the chosen stream(s) once it shows up; rejects
   * when the process exits first or after `timeoutMs`.
   */
  waitFor(
    pattern: string | RegExp,
    {
      stream = 'both',
      timeoutMs = 10_000,
    }: { stream?: 'stdout' | 'stderr' | 'both'; timeoutMs?: number } = {},
  ): Promise<RegExpMatchArray> {
    const regex = typeof pattern === 'string' ? new RegExp(escapeRegExp(pattern)) : pattern;
    const text = () =>
      stream === 'stdout'
        ? this.stdout
        : stream === 'stderr'
          ? this.stderr
          : `${this.stdout}\n${this.stderr}`;
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = regex.exec(text());
        if (match) {
          done();
          resolve(match);
        } else if (this.exitInfo !== undefined) {
          done();
          reject(
            new Error(
              `fulcrum ${this.args.join(' ')} exited (${describeExit(this.exitInfo)}) before printing ${regex}\n${this.output}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`fulcrum ${this.args.join(' ')}: no ${regex} within ${timeoutMs} ms\n${this.output}`),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Resolves when the process has exited; rejects after `timeoutMs` (the process is left running). */
  waitForExit(timeoutMs = 5000): Promise<Exit> {
    if (this.exitInfo !== undefined) return Promise.resolve(this.exitInfo);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`fulcrum ${this.args.join(' ')} still running after ${timeoutMs} ms\n${this.output}`),
          ),
        timeoutMs,
      );
      void this.exitPromise.then((exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
  }

  /**
   * Resolves once 127.0.0.1:port accepts connections; rejects as soon as the process exits, or
   * after `timeoutMs`.
   */
  async waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exitInfo !== undefined) {
        throw new Error(
          `fulcrum ${this.args.join(' ')} exited (${describeExit(this.exitInfo)}) before listening on port ${port}\n${this.output}`,
        );
      }
      if (await canConnect(port, 200)) return;
      if (Date.now() >= deadline) {
        throw new Error(
          `fulcrum ${this.args.join(' ')}: nothing accepted on 127.0.0.1:${port} within ${timeoutMs} ms\n${this.output}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` to the PID (no-op once exited). */
  signal(signal: NodeJS.Signals): void {
    if (this.exitInfo !== undefined) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  /**
   * Sends `signal` (SIGTERM by default) and waits for the exit; SIGKILL after `killAfterMs` if it
   * is still running then. Always resolves, with how the process ended.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 3000): Promise<Exit> {
    if (this.exitInfo !== undefined) return this.exitInfo;
    this.signal(signal);
    const timer = setTimeout(() => this.signal('SIGKILL'), killAfterMs);
    const exit = await this.exitPromise;
    clearTimeout(timer);
    return exit;
  }
}

/** Starts `fulcrum ARGS...` (it keeps running until stopped). */
export function spawnCli(args: readonly string[], options: SpawnOptions = {}): CliProcess {
  return new CliProcess(args, options);
}

export interface CliResult extends Exit {
  stdout: string;
  stderr: string;
}

/** Runs `fulcrum ARGS...` to completion; killed (and rejected) if it runs longer than `timeoutMs`. */
export async function runCli(
  args: readonly string[],
  options: SpawnOptions & { timeoutMs?: number } = {},
): Promise<CliResult> {
  const proc = new CliProcess(args, options);
  try {
    const exit = await proc.waitForExit(options.timeoutMs ?? 10_000);
    return { ...exit, stdout: proc.stdout, stderr: proc.stderr };
  } finally {
    await proc.stop('SIGKILL', 1000);
  }
}

/** Starts `fulcrum backend --port FREE --id ID ...` and resolves once its port accepts. */
export async function spawnBackend(
  id: string,
  extraArgs: readonly string[] = [],
): Promise<{ proc: CliProcess; port: number }> {
  const port = await freePort();
  const proc = spawnCli(['backend', '--port', String(port), '--id', id, ...extraArgs]);
  try {
    await proc.waitForPort(port);
    return { proc, port };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

/** A port nobody listens on right now (bind port 0 on loopback, read it, close). */
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

/** Listens on a free loopback port with a plain TCP server (to make a port "in use"). */
export function occupyPort(): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address();
      if (typeof address !== 'object' || address === null) return reject(new Error('no port'));
      resolve({
        server,
        port: address.port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}

/** Resolves true if a TCP connection to 127.0.0.1:port is accepted within `timeoutMs`. */
export function canConnect(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Waits until 127.0.0.1:port accepts connections; rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await canConnect(port, 200)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing accepted connections on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Time from sending the request to the end of the response. */
  ms: number;
}

/**
 * One HTTP request to 127.0.0.1:port on a fresh connection (`agent: false`: no keep-alive, so
 * every request is a new TCP connection). Rejects after `timeoutMs`.
 */
export function httpGet(
  port: number,
  path: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    timeoutMs?: number;
  } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            ms: performance.now() - started,
          });
        });
        res.on('error', reject);
      },
    );
    const timer = setTimeout(
      () => req.destroy(new Error(`${options.method ?? 'GET'} ${path} on port ${port}: no answer`)),
      options.timeoutMs ?? 5000,
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(options.body);
  });
}

/** A fresh directory under os.tmpdir(); `write` puts a file in it; `remove` deletes it all. */
export function tempDir(prefix = 'fulcrum-test-'): {
  path: string;
  write(name: string, text: string): string;
  remove(): void;
} {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    write(name, text) {
      const file = join(path, name);
      writeFileSync(file, text);
      return file;
    },
    remove() {
      rmSync(path, { recursive: true, force: true });
    },
  };
}

function describeExit(exit: Exit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

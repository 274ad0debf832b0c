/**
 * One active health probe against one server: an HTTP/1.1 request (`type: http`) or a bare TCP
 * connect (`type: tcp`), bounded by the check's timeout, answered with a pass or a failure and a
 * short reason for the log (`connect ECONNREFUSED`, `timeout after 1000ms`, `status 500`). For a
 * pool with `tls`, over TLS as the pool's requests are: HTTPS, or a completed TLS handshake.
 */
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, isIP, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type { HealthCheckConfig } from '../config/types.js';
import type { ServerTls } from '../core/pool.js';

/** Where to probe: read from the Server on every probe, so that a reload's new address is used. */
export interface ProbeTarget {
  host: string;
  port: number;
  /** `host:port` as configured: the default Host header. */
  address: string;
}

export interface ProbeResult {
  ok: boolean;
  /** Why it failed, or what passed (`status 200`, `connected`). */
  reason: string;
  durationMs: number;
}

/** The most body bytes read while looking for `expectBody` (HAProxy reads a buffer's worth). */
export const MAX_BODY_BYTES = 64 * 1024;

export const USER_AGENT = 'fulcrum-health-check';

export type ProbeConfig = Pick<
  HealthCheckConfig,
  'type' | 'path' | 'method' | 'expectStatus' | 'expectBody' | 'host' | 'timeout'
>;

/**
 * Runs one probe. Never rejects. Aborting `signal` ends it at once (as a failure, `cancelled`)
 * and closes its socket: stop() relies on that to leave no handle behind.
 */
export function probe(
  target: ProbeTarget,
  config: ProbeConfig,
  signal?: AbortSignal,
  tls?: ServerTls,
): Promise<ProbeResult> {
  return config.type === 'tcp'
    ? probeTcp(target, config, signal, tls)
    : probeHttp(target, config, signal, tls);
}

/** The TLS options of a probe: the pool's context, name and verification. */
function tlsOptions(target: ProbeTarget, tls: ServerTls): ConnectionOptions {
  return {
    secureContext: tls.context,
    servername: tls.serverName ?? (isIP(target.host) === 0 ? target.host : ''),
    rejectUnauthorized: tls.verify,
  };
}

/** A TLS failure in words: `TLS handshake: certificate has expired`. */
function tlsFailure(err: NodeJS.ErrnoException): string {
  return `TLS handshake: ${err.message}`;
}

/** The common frame: one settle, a timeout, abort handling, and a cleanup that closes the socket. */
function run(
  config: ProbeConfig,
  signal: AbortSignal | undefined,
  body: (finish: (ok: boolean, reason: string) => void) => () => void,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let done = false;
    let cleanup: (() => void) | undefined;
    const finish = (ok: boolean, reason: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      cleanup?.();
      resolve({ ok, reason, durationMs: performance.now() - started });
    };
    const onAbort = (): void => finish(false, 'cancelled');
    const timer = setTimeout(() => finish(false, `timeout after ${config.timeout}ms`), config.timeout);
    timer.unref();
    if (signal?.aborted) {
      finish(false, 'cancelled');
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    cleanup = body(finish);
    // body() may have finished synchronously, before cleanup was known.
    if (done) cleanup();
  });
}

function probeTcp(
  target: ProbeTarget,
  config: ProbeConfig,
  signal?: AbortSignal,
  tls?: ServerTls,
): Promise<ProbeResult> {
  return run(config, signal, (finish) => {
    let socket: Socket;
    if (tls === undefined) {
      socket = connect({ host: target.host, port: target.port });
      socket.once('connect', () => finish(true, 'connected'));
    } else {
      socket = tlsConnect({ host: target.host, port: target.port, ...tlsOptions(target, tls) });
      socket.once('secureConnect', () => finish(true, 'TLS handshake completed'));
    }
    socket.on('error', (err: NodeJS.ErrnoException) =>
      finish(
        false,
        tls !== undefined && err.syscall === undefined
          ? tlsFailure(err)
          : `connect ${err.code ?? err.message}`,
      ),
    );
    // A plain close (FIN, not RST): the server sees an ordinary short connection.
    return () => socket.destroy();
  });
}

function probeHttp(
  target: ProbeTarget,
  config: ProbeConfig,
  signal?: AbortSignal,
  tls?: ServerTls,
): Promise<ProbeResult> {
  return run(config, signal, (finish) => {
    let connected = false;
    const options: RequestOptions & ConnectionOptions = {
      host: target.host,
      port: target.port,
      method: config.method,
      path: config.path,
      // A fresh connection per probe: a pooled one would hide a server that stopped accepting.
      agent: false,
      // Not `Connection: close`: the server would close first and keep a TIME_WAIT socket for
      // every check. We close as soon as we have the verdict, so the TIME_WAIT is ours.
      headers: { host: config.host ?? target.address, connection: 'keep-alive', 'user-agent': USER_AGENT },
      ...(tls !== undefined ? tlsOptions(target, tls) : {}),
    };
    const req = tls === undefined ? httpRequest(options) : httpsRequest(options);
    let secured = tls === undefined;
    req.on('socket', (socket) => {
      socket.once('connect', () => (connected = true));
      socket.once('secureConnect', () => (secured = true));
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      finish(
        false,
        connected && !secured && err.syscall === undefined ? tlsFailure(err) : describe(err, connected),
      ),
    );
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const [min, max] = config.expectStatus;
      if (status < min || status > max) return finish(false, `status ${status}`);
      const expected = config.expectBody;
      if (expected === undefined) return finish(true, `status ${status}`);
      const needle = Buffer.from(expected);
      const missing = `body does not contain ${JSON.stringify(expected)}`;
      let seen = Buffer.alloc(0);
      res.on('data', (chunk: Buffer) => {
        const room = MAX_BODY_BYTES - seen.length;
        seen = Buffer.concat([seen, room < chunk.length ? chunk.subarray(0, room) : chunk]);
        if (seen.includes(needle)) finish(true, `status ${status}`);
        else if (seen.length >= MAX_BODY_BYTES) finish(false, `${missing} (first ${MAX_BODY_BYTES} bytes)`);
      });
      res.on('end', () => finish(false, missing));
      res.on('error', () => finish(false, 'connection closed before the body ended'));
      res.on('close', () => finish(false, 'connection closed before the body ended'));
    });
    req.end();
    return () => req.destroy();
  });
}

function describe(err: NodeJS.ErrnoException, connected: boolean): string {
  const code = err.code ?? err.message;
  if (!connected) return `connect ${code}`;
  // Node's name for "closed (or reset) before a response head arrived".
  if (err.message === 'socket hang up') return 'connection closed without a response';
  if (code.startsWith('HPE_')) return `invalid response (${code})`;
  return code;
}

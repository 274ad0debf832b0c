/**
 * One request's exchange with the servers of a pool, for any front (an HTTP/1.1 connection now,
 * an HTTP/2 stream next): sticky lookup, selection, lease, a pooled upstream connection, the
 * request sent with its body streamed, the response parsed strictly and relayed with
 * backpressure, the lease released with its outcome, and retries on the next candidate.
 *
 * The exchange owns the upstream side and never the client's: it tells its front what to send
 * through the ExchangeFront callbacks, and the front hands it the request body as it arrives.
 */

import { PIN_WAIT_LIMIT_MS, resolvePinned } from '../core/affinity.js';
import type { Logger } from '../core/log.js';
import { Outcome, type Pool } from '../core/pool.js';
import { type SelectContext, Selection } from '../core/selection.js';
import type { Server } from '../core/server.js';
import { Failure, failureLine, retryCondition, statusOf } from './errorResponse.js';
import { assignRequestId, type ForwardedFor, setCookies, writeUpstreamRequestHead } from './headerRules.js';
import { CHUNKED_ERROR, CHUNKED_MORE, ChunkedDecoder } from './http/chunkedDecoder.js';
import {
  Framing,
  findHeadEnd,
  newResponseHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
  responseHasBody,
} from './http/headParser.js';
import { HEAD_WRITER } from './http/headWriter.js';
import type { UpstreamConnection, UpstreamOwner, UpstreamPool } from './http/upstreamPool.js';

/** What the exchange asks of the front that carries the client's side. */
export interface ExchangeFront {
  /** When the exchange's current step times out (ms since epoch): the front's sweep then calls `Exchange.onTimeout`. */
  deadline: number;
  /** The exchange takes request body bytes again (`writeBody` had returned false). */
  onBodyDrain(): void;
  /** An interim response (100 Continue, 103 Early Hints): the front passes it on if it can. */
  onInterim(res: ResponseHead): void;
  /**
   * The final response begins. `framing` is the body's framing as the front will relay it;
   * `extra` holds header lines of ours (a sticky cookie), each ending in CRLF; the body bytes
   * that came with the head are `buf[from, to)` (framing included), and `complete` says they
   * are the whole body (the exchange is over: `onResponseEnd` follows at once). False: the
   * client is full; `resumeResponse` later.
   */
  onResponseHead(
    res: ResponseHead,
    framing: Framing,
    extra: string,
    buf: Buffer,
    from: number,
    to: number,
    complete: boolean,
  ): boolean;
  /** Response body bytes (or tunnel bytes). False: the client is full; `resumeResponse` later. */
  onResponseBody(chunk: Buffer): boolean;
  /** The response is complete and the lease released. */
  onResponseEnd(): void;
  /**
   * Asked once after each read from the server: did the front, during that call, hand response
   * bytes it was given (a view of the server connection's read buffer, lent for the length of
   * the call) to a write that is not done yet, rather than a copy of them? Then that buffer is
   * not read into again. The answer covers that call only (the front forgets it once asked).
   */
  holdsLent(): boolean;
  /** 101 Switching Protocols: bytes now go both ways as they are; `rest` came with the head. */
  onUpgrade(res: ResponseHead, rest: Buffer): void;
  /** The server ended the tunnel, or a body delimited by the server's close ended. */
  onUpstreamEnd(): void;
  /** The exchange failed before anything of a response reached the client: answer `status`. */
  onFailure(status: number, why: string): void;
  /** The server failed after the response began: the client's side must be cut. */
  onAbort(why: string): void;
}

/** What an exchange needs of its listener. */
export interface ExchangeContext {
  readonly name: string;
  readonly log: Logger;
  readonly upstreams: UpstreamPool;
  /**
   * Logs a kind of event at most once a second, the rest counted into a summary (a dead server
   * fails every request sent to it: its lines must not flood the log).
   */
  note(key: string, line: string, warn?: boolean): void;
}

enum Step {
  Idle = 0,
  /** Asking a shared stick table which server the client is pinned to. */
  Pinning = 1,
  /** Opening a connection to the chosen server. */
  Connecting = 2,
  /** Request sent (or its body streaming); response head awaited or body being relayed. */
  Exchanging = 3,
  /** After a 101: bytes piped both ways. */
  Tunnel = 4,
}

enum Res {
  Head = 0,
  Body = 1,
  Done = 2,
}

/** Request body bytes held before the server's connection is ready; beyond it the front pauses. */
const MAX_HELD = 64 * 1024;
/** Request bodies up to this size are kept while sent, so the request can be replayed. */
const REPLAY_LIMIT = 64 * 1024;
/** Request body bytes at hand up to this size are copied behind the head: one write. */
const COPY_BODY = 4096;
/** Upstream response heads larger than this are garbage. */
const MAX_RESPONSE_HEAD = 64 * 1024;
/** Idle limit of upgraded (WebSocket) connections. */
export const TUNNEL_IDLE_MS = 3_600_000;

/** Methods a proxy may send again after a failure (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/**
 * The exchange of one request at a time; a front keeps one and starts it again for each
 * request, so a request that is not retried allocates almost nothing here.
 */
export class Exchange implements UpstreamOwner {
  private readonly front: ExchangeFront;
  private readonly ctx: ExchangeContext;
  /** The candidates of the current request: the pinned server, the policy's choice, fallbacks. */
  readonly selection = new Selection();
  /** Relay chunked response bodies as data only (the front frames the body itself). */
  decodeChunked = false;
  /** The client's scheme and address, as the header rules need them. */
  private from: ForwardedFor = { peerIp: '', trustedPeer: false, proto: 'http' };

  private step = Step.Idle;
  /** Counts requests started, so that a late sticky answer is not taken for a later request. */
  private generation = 0;
  pool: Pool | null = null;
  private req: RequestHead | null = null;
  private selectCtx: SelectContext | null = null;
  private pinned: Server | undefined = undefined;
  /** The leased server, until the lease is released. */
  private server: Server | null = null;
  private up: UpstreamConnection | null = null;
  /** The request body is complete (the front said so, or there is none). */
  private reqDone = true;
  /** Body chunks not yet sent (from `unsent` on) and, while `keep`, those sent (before it). */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private unsent = 0;
  /** Sent body chunks are kept for a replay (idempotent method, body small so far). */
  private keep = false;
  /** Some of the body has been sent to a server without being kept. */
  private sentUnkept = false;
  private refusedRetried = false;
  private startedAt = 0;
  private ttfb = 0;
  private lastFailure = Failure.NoServer;
  private lastError = '';

  private readonly res = newResponseHead();
  private resPhase = Res.Done;
  private resBuf: Buffer | null = null;
  private resFraming = Framing.None;
  private resRemaining = 0;
  private readonly resChunked = new ChunkedDecoder();
  /** A final response head went to the client for the current request. */
  responded = false;
  private upReusable = false;
  private readonly dataSink: (b: Buffer, s: number, e: number) => void;

  constructor(front: ExchangeFront, ctx: ExchangeContext) {
    this.front = front;
    this.ctx = ctx;
    this.dataSink = (b, s, e) => {
      if (!this.front.onResponseBody(b.subarray(s, e))) this.up?.socket.pause();
    };
  }

  /** An exchange is under way (from start until its end, failure or cancel). */
  get busy(): boolean {
    return this.step !== Step.Idle;
  }

  /** Piping an upgraded connection. */
  get tunnel(): boolean {
    return this.step === Step.Tunnel;
  }

  /** The server of the last try, if any (for the access log). */
  get lastServer(): Server | undefined {
    return this.selection.tried.at(-1);
  }

  /**
   * Starts the exchange of `req` with `pool`. `selectCtx` is the front's reusable context (client
   * address after trusted proxies); `cookies` the request's Cookie header for sticky sessions.
   * `body`: body bytes that came with the head (sent with it), `bodyDone` when that is all of
   * it; the rest follows through `writeBody` and `endBody`.
   */
  start(
    pool: Pool,
    req: RequestHead,
    from: ForwardedFor,
    selectCtx: SelectContext,
    cookies: string | null,
    body: Buffer | null = null,
    bodyDone = req.framing === Framing.None,
  ): void {
    this.generation++;
    this.pool = pool;
    this.req = req;
    this.from = from;
    this.selectCtx = selectCtx;
    this.startedAt = Date.now();
    this.reqDone = bodyDone;
    this.held.length = 0;
    this.heldBytes = 0;
    this.unsent = 0;
    if (body !== null && body.length > 0) {
      this.held.push(body);
      this.heldBytes = body.length;
    }
    this.keep = IDEMPOTENT.has(req.method);
    this.sentUnkept = false;
    this.refusedRetried = false;
    this.responded = false;
    this.resPhase = Res.Done;
    this.lastFailure = Failure.NoServer;
    this.lastError = '';
    assignRequestId(req);
    this.pinned = undefined;
    const affinity = pool.affinity;
    if (affinity === null) return this.begin();
    const found = resolvePinned(affinity, selectCtx.clientIp, cookies);
    if (!(found instanceof Promise)) {
      this.pinned = found;
      return this.begin();
    }
    this.step = Step.Pinning;
    this.front.deadline = Date.now() + PIN_WAIT_LIMIT_MS;
    // The head object is reused for the next request: the count tells a late answer apart.
    const generation = this.generation;
    found.then((server) => {
      if (this.step !== Step.Pinning || this.generation !== generation) return;
      this.pinned = server;
      this.begin();
    });
  }

  private begin(): void {
    this.selection.start(this.pool!, this.selectCtx!, this.pinned);
    this.dispatch();
  }

  /** Leases the next candidate and sends the request over a pooled or new connection. */
  private dispatch(): void {
    const server = this.selection.next();
    if (server === undefined) {
      if (this.selection.tried.length === 0) {
        return this.fail(statusOf(Failure.NoServer), `pool ${this.pool!.name} has no server available`);
      }
      return this.fail(statusOf(this.lastFailure), this.lastError);
    }
    this.server = server;
    const list = this.ctx.upstreams.listFor(server, this.pool!.options);
    const up = list.take(this);
    if (up !== null) {
      this.up = up;
      this.sendRequest();
    } else {
      this.connect(server);
    }
  }

  private connect(server: Server): void {
    this.up = this.ctx.upstreams.listFor(server, this.pool!.options).open(this);
    this.step = Step.Connecting;
    this.front.deadline = Date.now() + this.pool!.options.timeouts.connect;
  }

  onUpstreamConnect(up: UpstreamConnection): void {
    if (up === this.up && this.step === Step.Connecting) this.sendRequest();
  }

  private sendRequest(): void {
    const out = this.up!.socket;
    const req = this.req!;
    this.step = Step.Exchanging;
    this.resPhase = Res.Head;
    this.resBuf = null;
    this.front.deadline = Date.now() + this.pool!.options.timeouts.response;
    // The head is built for each send (a retry, a reconnect), into the shared head writer.
    const w = HEAD_WRITER;
    w.reset();
    writeUpstreamRequestHead(req, this.from, this.server!.address, w);
    const held = this.held;
    if (this.unsent < held.length) {
      let bytes = 0;
      for (let i = this.unsent; i < held.length; i++) bytes += held[i]!.length;
      if (bytes <= COPY_BODY) {
        // A small body goes in the same buffer: one write.
        for (let i = this.unsent; i < held.length; i++) w.bytes(held[i]!, 0, held[i]!.length);
        w.flush(out);
      } else {
        out.cork();
        out.write(w.take());
        for (let i = this.unsent; i < held.length; i++) out.write(held[i]!);
        out.uncork();
      }
      this.sent();
    } else {
      w.flush(out);
    }
    // Held bytes may have paused the client's reads.
    if (!this.reqDone && !out.writableNeedDrain) this.front.onBodyDrain();
  }

  /** Every held chunk has been written: keep them for a replay, or let them go. */
  private sent(): void {
    this.unsent = this.held.length;
    if (!this.keep) {
      this.sentUnkept = true;
      this.held.length = 0;
      this.heldBytes = 0;
      this.unsent = 0;
    }
  }

  /**
   * Request body bytes as they go to the server (framing included). False: hold further bytes
   * until `onBodyDrain`.
   */
  writeBody(chunk: Buffer): boolean {
    if (this.step !== Step.Exchanging || this.up === null) {
      if (this.step === Step.Idle || this.step === Step.Tunnel) return true;
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      return this.heldBytes < MAX_HELD;
    }
    this.front.deadline = Date.now() + this.pool!.options.timeouts.response;
    if (this.keep) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      this.unsent = this.held.length;
      if (this.heldBytes > REPLAY_LIMIT) {
        this.keep = false;
        this.sentUnkept = true;
        this.held.length = 0;
        this.heldBytes = 0;
        this.unsent = 0;
      }
    } else this.sentUnkept = true;
    return this.up.socket.write(chunk);
  }

  /** The request body is complete. */
  endBody(): void {
    this.reqDone = true;
    if (this.resPhase === Res.Done && this.step === Step.Exchanging) this.finish();
  }

  /** Bytes from the client of an upgraded connection. False: the server is full (see onBodyDrain). */
  writeTunnel(chunk: Buffer): boolean {
    this.front.deadline = Date.now() + TUNNEL_IDLE_MS;
    return this.up === null || this.up.socket.write(chunk);
  }

  /** The client ended its side of an upgraded connection. */
  endTunnel(): void {
    this.up?.socket.end();
  }

  /** The client can take response bytes again. */
  resumeResponse(): void {
    const up = this.up;
    if (up?.socket.isPaused()) up.socket.resume();
  }

  onUpstreamDrain(up: UpstreamConnection): void {
    if (up === this.up) this.front.onBodyDrain();
  }

  /**
   * The client went away or its request turned out malformed: the upstream connection is
   * closed (it is out of step) and the lease released without blaming the server.
   */
  cancel(): void {
    const up = this.up;
    this.up = null;
    up?.destroy();
    this.releaseLease(Outcome.Cancelled);
    this.end();
  }

  // ---- the response ----

  onUpstreamData(up: UpstreamConnection, chunk: Buffer): boolean {
    if (up !== this.up) {
      up.destroy();
      return false;
    }
    if (this.step === Step.Tunnel) {
      this.front.deadline = Date.now() + TUNNEL_IDLE_MS;
      if (!this.front.onResponseBody(chunk)) up.socket.pause();
    } else {
      this.front.deadline = Date.now() + this.pool!.options.timeouts.response;
      if (this.resPhase === Res.Body) this.relayBody(chunk);
      else if (this.resPhase === Res.Head) this.readHead(chunk);
      // Bytes after a complete response: the server is out of step, never reuse it.
      else this.upReusable = false;
    }
    return this.front.holdsLent();
  }

  private readHead(chunk: Buffer): void {
    const held = this.resBuf;
    let buf = held === null ? chunk : Buffer.concat([held, chunk]);
    for (;;) {
      const end = findHeadEnd(buf, 0);
      if (end < 0) {
        if (buf.length > MAX_RESPONSE_HEAD) return this.broken('response head too large');
        // Kept for the next read: a copy when it is (a part of) the lent chunk.
        this.resBuf = held === null ? Buffer.from(buf) : buf;
        return;
      }
      const res = this.res;
      if (parseResponseHead(buf.toString('latin1', 0, end), res) !== 0) return this.broken(res.error);
      const rest = end + 4;
      if (res.status >= 200) {
        this.resBuf = null;
        if (res.status >= 500 && this.retry5xx()) return;
        return this.startResponse(buf, rest);
      }
      if (res.status === 101) {
        if (!this.req!.upgrade) return this.broken('101 without an upgrade request');
        return this.startTunnel(buf.subarray(rest));
      }
      this.front.onInterim(res);
      if (rest >= buf.length) {
        this.resBuf = null;
        return;
      }
      buf = buf.subarray(rest);
    }
  }

  /**
   * `retries.on: [5xx]`: the answer is discarded and the request sent to the next candidate,
   * when the request can be replayed and there is another server to try. The last server's
   * answer is passed on when none is left.
   */
  private retry5xx(): boolean {
    const pool = this.pool!;
    const retries = pool.options.retries;
    if (!retries.on.includes('5xx') || this.selection.tried.length > retries.attempts || !this.replayable()) {
      return false;
    }
    const failed = this.server!;
    const next = this.selection.next();
    if (next === undefined) return false;
    const status = this.res.status;
    const up = this.up;
    this.up = null;
    up?.destroy(); // its body is not read: the connection is out of step
    // The server did answer: passive health sees the status, as for any answer.
    this.ttfb = Date.now() - this.startedAt;
    this.server = failed;
    this.releaseLease(Outcome.Success, status);
    this.ctx.note(
      `retry ${pool.name} ${failed.id}`,
      this.line(`${status} from server ${failed.id}, retrying`),
      false,
    );
    this.server = next;
    this.unsent = 0;
    const list = this.ctx.upstreams.listFor(next, pool.options);
    const again = list.take(this);
    if (again !== null) {
      this.up = again;
      this.sendRequest();
    } else this.connect(next);
    return true;
  }

  /** Sends the response head to the front with the body bytes that came with it (buf[rest..]). */
  private startResponse(buf: Buffer, rest: number): void {
    const res = this.res;
    const req = this.req!;
    this.ttfb = Date.now() - this.startedAt;
    if (!responseHasBody(req.method, res.status)) this.resFraming = Framing.None;
    else {
      this.resFraming = res.framing;
      if (res.framing === Framing.Chunked) this.resChunked.reset();
      else if (res.framing === Framing.Length) this.resRemaining = res.contentLength;
    }
    this.upReusable = !res.close && res.minor === 1 && this.resFraming !== Framing.UntilClose;
    const pool = this.pool!;
    const affinity = pool.affinity;
    const extra =
      affinity === null
        ? ''
        : affinity.onResponse(
            this.selectCtx!.clientIp,
            this.server!,
            this.pinned,
            setCookies(res),
            this.from.proto === 'https',
          );
    const extraBytes = buf.length - rest;
    this.responded = true;
    const front = this.front;
    const framing =
      this.resFraming === Framing.Chunked && this.decodeChunked ? Framing.UntilClose : this.resFraming;
    let to = rest;
    let complete = false;
    switch (this.resFraming) {
      case Framing.None:
        complete = true;
        break;
      case Framing.Length:
        to = rest + Math.min(extraBytes, this.resRemaining);
        this.resRemaining -= to - rest;
        complete = this.resRemaining === 0;
        break;
      case Framing.Chunked:
        if (this.decodeChunked || extraBytes === 0) break;
        {
          // Passed through as it is: find how much of it came with the head.
          const r = this.resChunked.feed(buf, rest);
          if (r === CHUNKED_ERROR) {
            this.responded = false;
            return this.broken(`bad chunked response: ${this.resChunked.error}`);
          }
          complete = r !== CHUNKED_MORE;
          to = complete ? r : buf.length;
        }
        break;
      default:
        to = buf.length;
    }
    if (to < buf.length && (complete || this.resFraming === Framing.Length)) {
      // Bytes after the response: the server is out of step, never reuse it.
      this.upReusable = false;
    }
    if (!complete) this.resPhase = Res.Body;
    const ok = front.onResponseHead(res, framing, extra, buf, rest, to, complete);
    if (complete) return this.finish();
    if (this.decodeChunked && this.resFraming === Framing.Chunked && extraBytes > 0) {
      return this.relayBody(buf.subarray(rest));
    }
    if (!ok) this.up?.socket.pause();
  }

  private relayBody(buf: Buffer): void {
    let ok = true;
    switch (this.resFraming) {
      case Framing.Length: {
        const take = Math.min(this.resRemaining, buf.length);
        this.resRemaining -= take;
        ok = this.front.onResponseBody(take === buf.length ? buf : buf.subarray(0, take));
        if (this.resRemaining === 0) {
          if (take < buf.length) this.upReusable = false;
          return this.finish();
        }
        break;
      }
      case Framing.Chunked: {
        const r = this.resChunked.feed(buf, 0, this.decodeChunked ? this.dataSink : undefined);
        if (r === CHUNKED_ERROR) return this.broken(`bad chunked response: ${this.resChunked.error}`);
        if (!this.decodeChunked) {
          ok = this.front.onResponseBody(r === CHUNKED_MORE || r === buf.length ? buf : buf.subarray(0, r));
        }
        if (r !== CHUNKED_MORE) {
          if (r < buf.length) this.upReusable = false;
          return this.finish();
        }
        break;
      }
      default:
        ok = this.front.onResponseBody(buf);
    }
    if (!ok) this.up?.socket.pause();
  }

  private startTunnel(rest: Buffer): void {
    this.ttfb = Date.now() - this.startedAt;
    this.responded = true;
    this.resPhase = Res.Done;
    this.step = Step.Tunnel;
    this.front.deadline = Date.now() + TUNNEL_IDLE_MS;
    this.front.onUpgrade(this.res, rest);
  }

  onUpstreamClose(up: UpstreamConnection, error: Error | undefined): void {
    if (up !== this.up) return;
    this.up = null;
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    switch (this.step) {
      case Step.Tunnel:
        this.releaseLease(Outcome.Success);
        this.end();
        return this.front.onUpstreamEnd();
      case Step.Connecting:
        if (code === 'ECONNREFUSED' && !this.refusedRetried && this.server !== null) {
          // A server that is up refuses a connect only transiently (a leftover socket of an
          // earlier connection on the same ports, a restarting listener): one fresh connect,
          // from another local port, before counting it as failed.
          this.refusedRetried = true;
          return this.connect(this.server);
        }
        return this.retryOrFail(Failure.ConnectFailed, up.handshakeError ?? `connect ${code ?? 'failed'}`);
      case Step.Exchanging:
        break;
      default:
        return;
    }
    if (this.resPhase === Res.Done) return;
    if (this.resPhase === Res.Head) {
      const replayable = this.replayable();
      // A reused keep-alive connection the server had just closed: not the server's fault;
      // the request goes again to the same server on a new connection (once: it is new).
      if (up.reused && replayable && this.server !== null) {
        this.unsent = 0;
        return this.connect(this.server);
      }
      const why = `server closed the connection before answering${code ? ` (${code})` : ''}`;
      if (replayable) return this.retryOrFail(Failure.Reset, why);
      this.releaseLease(Outcome.Failure);
      return this.fail(statusOf(Failure.Reset), `${why} (server ${this.lastServer?.id ?? '?'})`);
    }
    if (this.resFraming === Framing.UntilClose && error === undefined) {
      // The end of a body delimited by the connection's close.
      this.releaseLease(Outcome.Success, this.res.status);
      this.end();
      return this.front.onUpstreamEnd();
    }
    this.releaseLease(Outcome.Failure);
    this.abort(`server closed the connection mid-response${code ? ` (${code})` : ''}`);
  }

  /**
   * The request can be sent again: idempotent, every body byte sent so far kept, and nothing of
   * a response received yet.
   */
  private replayable(): boolean {
    return this.keep && !this.sentUnkept && this.resBuf === null && !this.responded;
  }

  /** The server failed before anything reached the client: the next candidate, or an error. */
  private retryOrFail(failure: Failure, why: string): void {
    const server = this.server;
    this.releaseLease(Outcome.Failure);
    this.lastFailure = failure;
    this.lastError = `${why} (server ${server?.id ?? '?'})`;
    const retries = this.pool!.options.retries;
    const condition = retryCondition(failure);
    const replayable = condition === 'connect-failure' || this.replayable();
    if (
      condition !== null &&
      replayable &&
      this.selection.tried.length <= retries.attempts &&
      retries.on.includes(condition)
    ) {
      this.ctx.note(
        `retry ${this.pool!.name} ${server?.id}`,
        this.line(`${this.lastError}, retrying`),
        false,
      );
      this.unsent = 0;
      return this.dispatch();
    }
    this.fail(statusOf(failure), this.lastError);
  }

  /** The server sent something that is not HTTP: fail, or cut the client if it began. */
  private broken(why: string): void {
    const up = this.up;
    this.up = null;
    up?.destroy();
    this.releaseLease(Outcome.Failure);
    if (this.responded) return this.abort(why);
    this.fail(statusOf(Failure.BadResponse), `${why} (server ${this.lastServer?.id ?? '?'})`);
  }

  /** Called by the front's sweep when `front.deadline` has passed during the exchange. */
  onTimeout(): void {
    switch (this.step) {
      case Step.Pinning:
        // The stick table is too slow to answer: the policy chooses.
        this.pinned = undefined;
        return this.begin();
      case Step.Connecting: {
        const up = this.up;
        this.up = null;
        up?.destroy();
        return this.retryOrFail(Failure.ConnectTimeout, 'connect timeout');
      }
      case Step.Exchanging: {
        const up = this.up;
        this.up = null;
        up?.destroy();
        const ms = this.pool!.options.timeouts.response;
        if (!this.responded && this.replayable()) {
          return this.retryOrFail(Failure.ResponseTimeout, `server did not answer within ${ms}ms`);
        }
        this.releaseLease(Outcome.Failure);
        if (this.responded) return this.abort('server stopped sending the response (timeout)');
        return this.fail(
          statusOf(Failure.ResponseTimeout),
          `server did not answer in time (server ${this.lastServer?.id ?? '?'})`,
        );
      }
      case Step.Tunnel: {
        const up = this.up;
        this.up = null;
        up?.destroy();
        this.releaseLease(Outcome.Success);
        this.end();
        return this.front.onAbort('tunnel idle'); // routine: not logged
      }
      default:
    }
  }

  // ---- the end ----

  /** The response is complete: lease released, connection kept or closed, front told. */
  private finish(): void {
    this.resPhase = Res.Done;
    // A response complete before its request body: the rest of the body cannot be told from a
    // next request, so the front closes after it, and this connection is out of step.
    if (!this.reqDone) this.upReusable = false;
    this.releaseLease(Outcome.Success, this.res.status);
    const up = this.up;
    if (up !== null) {
      this.up = null;
      if (this.upReusable)
        this.ctx.upstreams.listFor(up.server, this.pool!.options).put(up, this.res.keepAliveMs);
      else up.destroy();
    }
    this.end();
    this.front.onResponseEnd();
  }

  private fail(status: number, why: string): void {
    const up = this.up;
    this.up = null;
    up?.destroy();
    this.end();
    this.ctx.note(`fail ${this.pool?.name} ${status}`, this.line(`${status}: ${why}`));
    this.front.onFailure(status, why);
  }

  /** The server failed after the response began: logged, and the client's side is cut. */
  private abort(why: string): void {
    this.end();
    this.ctx.note(`abort ${this.pool?.name}`, this.line(why));
    this.front.onAbort(why);
  }

  private end(): void {
    this.step = Step.Idle;
    this.resPhase = Res.Done;
    this.held.length = 0;
    this.heldBytes = 0;
    this.unsent = 0;
  }

  private releaseLease(outcome: Outcome, status = 0): void {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    const ms = outcome === Outcome.Success ? this.ttfb : Date.now() - this.startedAt;
    this.pool!.release(server, outcome, ms, status);
  }

  private line(msg: string): string {
    const r = this.req!;
    return failureLine(this.ctx.name, r.method, r.path, this.selectCtx!.clientIp, this.pool?.name, msg);
  }
}

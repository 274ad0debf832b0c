import type { Socket } from 'node:net';
import type { CidrSet } from '../../core/cidr.js';
import { unmapIPv4 } from '../../core/cidr.js';
import type { TrafficObserver } from '../../core/observer.js';
import type { SelectContext } from '../../core/selection.js';
import type { ListenerProtection } from '../../protection/listenerProtection.js';
import { http1ErrorResponse } from '../errorResponse.js';
import { Exchange, type ExchangeContext, type ExchangeFront } from '../exchange.js';
import type { FrontConnection } from '../frontConnection.js';
import {
  allFieldLines,
  clientIpOf,
  cookieHeader,
  type ForwardedFor,
  loggedRequestId,
  writeEndToEndLines,
} from '../headerRules.js';
import { http1Redirect, httpsLocation } from '../tls/httpsRedirect.js';
import { CHUNKED_ERROR, CHUNKED_MORE, ChunkedDecoder } from './chunkedDecoder.js';
import {
  Framing,
  findHeadEnd,
  headerValue,
  newRequestHead,
  parseRequestHead,
  type ResponseHead,
  setUnparsedMethod,
} from './headParser.js';
import { HEAD_WRITER } from './headWriter.js';
import type { Router } from './router.js';

/** What a client connection needs from its listener. Swappable fields apply on reload. */
export interface ListenerContext extends ExchangeContext {
  router: Router;
  trusted: CidrSet | null;
  maxHeaderSize: number;
  timeouts: { requestHead: number; idle: number };
  /** Shutting down: finish the current exchange, then close. */
  closing: boolean;
  /** Told of every finished exchange (metrics, access log), when set. */
  observer: TrafficObserver | null;
  /** Rate and size limits, when the listener has `protection`. */
  protection: ListenerProtection | null;
  readonly connections: Set<FrontConnection>;
  /** Clients reach us over TLS (X-Forwarded-Proto: https, Secure cookies). */
  readonly secure: boolean;
  /** The Strict-Transport-Security value sent on every response, or ''. */
  hsts: string;
  /** redirectHttps: the port of the TLS listener requests are redirected to; null when off. */
  redirectPort: (() => number) | null;
  /** h2c with prior knowledge: takes over a connection that starts with the HTTP/2 preface; null when off. */
  h2c: ((socket: Socket, first: Buffer, admittedBy: ListenerProtection | null) => void) | null;
}

/** The start of the HTTP/2 connection preface (RFC 9113 3.4). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

enum Phase {
  /** Between requests (keep-alive), or before the first byte. */
  Idle = 0,
  /** Receiving a request head. */
  Head = 1,
  /** The request is with its exchange: body streaming, response awaited or relayed. */
  Exchange = 2,
  /** After a 101 Switching Protocols: bytes are piped both ways. */
  Tunnel = 3,
  Closed = 4,
}

/** Pipelined bytes held while a response is in flight, before we stop reading. */
const MAX_PIPELINE_BUFFER = 64 * 1024;
/**
 * Response bodies up to this size that arrive with their head go out in the same write, copied
 * behind the head in the shared head buffer: one syscall and no Buffer of their own (measured at
 * 16 KiB: 54.3 → 52.5 µs and 2.9 → 1.6 KB of heap per request, 6 MB less peak RSS).
 */
const SMALL_BODY = 64 * 1024;
/** How often a streaming request body's rate is checked against `timeouts.bodyMinRate`. */
const BODY_CHECK_MS = 1000;
/** A closed-but-lingering client socket is destroyed after this long. */
const LINGER_MS = 2000;

/**
 * The HTTP/1.1 front: one client connection and its requests, one at a time (pipelined requests
 * wait their turn). A request head is parsed strictly and routed to a pool; its Exchange does the
 * rest with the servers. This class owns the client's socket: request framing (where a body
 * ends and the next request starts), keep-alive, the response head's connection fields,
 * backpressure from the client, timeouts and the access log record.
 */
export class ClientConnection implements ExchangeFront, FrontConnection {
  readonly socket: Socket;
  private readonly ctx: ListenerContext;
  private readonly exchange: Exchange;
  private readonly from: ForwardedFor;
  private readonly selectCtx: SelectContext;
  /** Why protection refused the request being reported, for the access log. */
  private refusal: string | undefined = undefined;
  /** The protection that admitted this connection (it is released there on close). */
  private readonly admittedBy: ListenerProtection | null;
  /** Body bytes of the current request so far (for `limits.maxBodySize`). */
  private bodyBytes = 0;
  /** When the current request's body rate is checked next (`timeouts.bodyMinRate`); Infinity: never. */
  bodyCheckAt = Number.POSITIVE_INFINITY;

  private phase = Phase.Idle;
  /** When the current phase times out (ms since epoch); checked by the listener's sweep. */
  deadline: number;
  private inBuf: Buffer | null = null;
  private scanFrom = 0;
  private readPaused = false;
  /** The exchange (or the server, in a tunnel) cannot take more bytes right now. */
  private upBlocked = false;
  private clientEnded = false;
  /** No request has been read yet (h2c looks at the first bytes). */
  private firstRequest = true;

  private readonly req = newRequestHead();
  private reqFraming = Framing.None;
  private reqRemaining = 0;
  private readonly reqChunked = new ChunkedDecoder();
  /** The whole request body has been read from the client. */
  private reqDone = true;
  private keepAlive = true;
  /** Since `holdsLent` was last asked: lent response bytes went to a write uncopied. */
  private wroteLent = false;
  /** The current request was routed (a rejected one reports no pool or server). */
  private routed = false;
  private status = 0;
  /** socket.bytesWritten when the exchange began; -1 while nobody observes traffic. */
  private reportStart = -1;
  /** performance.now() when an observed exchange began: sub-millisecond durations. */
  private reportAt = 0;
  /** `socket.bytesRead` at the last report. */
  private reportRead = 0;
  private startedAt = 0;

  /**
   * `readsData`: take the socket's bytes from its 'data' events; false when the listener reads it
   * with `onread` and calls `onData` itself.
   */
  constructor(
    socket: Socket,
    ctx: ListenerContext,
    admittedBy: ListenerProtection | null = null,
    readsData = true,
  ) {
    this.socket = socket;
    this.ctx = ctx;
    this.admittedBy = admittedBy;
    this.exchange = new Exchange(this, ctx);
    const peerIp = unmapIPv4(socket.remoteAddress ?? '');
    this.from = {
      peerIp,
      trustedPeer: ctx.trusted?.has(peerIp) ?? false,
      // The socket's own: a reload may turn the listener's TLS on or off during a handshake.
      proto: (socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http',
    };
    this.selectCtx = { clientIp: peerIp, hashKey: undefined };
    // The first request must arrive within the request-head timeout, later ones within idle.
    this.deadline = Date.now() + ctx.timeouts.requestHead;
    socket.setNoDelay(true);
    if (readsData) socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('drain', () => this.exchange.resumeResponse());
    socket.on('error', () => {}); // 'close' follows; resets from clients are routine
    socket.on('close', () => this.onClose());
    ctx.connections.add(this);
  }

  /** Cut the connection (shutdown timeout). */
  destroy(): void {
    this.socket.destroy();
  }

  /** redirectHttps: 308 to the same host and target on the TLS listener's port. */
  private redirect(port: number): void {
    const req = this.req;
    this.routed = false;
    // A body is not read: the connection closes after the answer.
    if (req.framing !== Framing.None) {
      this.keepAlive = false;
      this.reqDone = false;
    } else {
      this.keepAlive = !req.close && !this.ctx.closing;
      this.reqDone = true;
    }
    this.phase = Phase.Exchange;
    this.socket.write(http1Redirect(httpsLocation(req.host, port, req.target), !this.keepAlive), 'latin1');
    this.report(308);
    this.nextRequest();
  }

  /**
   * ExchangeFront: response bytes written as they were lent (a body above SMALL_BODY, a body's
   * later reads, a tunnel's bytes), not copied, in a write not done yet.
   */
  holdsLent(): boolean {
    const held = this.wroteLent && this.socket.writableLength > 0;
    this.wroteLent = false;
    return held;
  }

  /** Idle between requests: safe to close now (shutdown). */
  get idle(): boolean {
    return this.phase === Phase.Idle && this.inBuf === null;
  }

  // ---- the client's bytes ----

  /** Bytes from the client (its 'data' events, or the listener's `onread`). */
  onData(chunk: Buffer): void {
    try {
      switch (this.phase) {
        case Phase.Tunnel:
          if (!this.exchange.writeTunnel(chunk)) this.block();
          return;
        case Phase.Exchange:
          if (!this.reqDone) return this.forwardBody(chunk);
          this.hold(chunk);
          return;
        case Phase.Idle:
          this.phase = Phase.Head;
          this.deadline = Date.now() + this.ctx.timeouts.requestHead;
          this.hold(chunk);
          if (this.ctx.h2c !== null && this.firstRequest && this.h2Preface()) return;
          this.parseHead();
          return;
        case Phase.Head:
          this.hold(chunk);
          if (this.ctx.h2c !== null && this.firstRequest && this.h2Preface()) return;
          this.parseHead();
          return;
        case Phase.Closed:
          return;
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  /**
   * h2c with prior knowledge: when the first bytes are the HTTP/2 preface, the connection is
   * handed to the HTTP/2 front (with the bytes read so far) and true returned. While they may
   * still become it, false with nothing parsed would misread them, so a short prefix waits.
   */
  private h2Preface(): boolean {
    const buf = this.inBuf!;
    const n = Math.min(buf.length, H2_PREFACE.length);
    if (buf.compare(H2_PREFACE, 0, n, 0, n) !== 0) {
      this.firstRequest = false;
      return false;
    }
    if (n < H2_PREFACE.length) return true; // more bytes will tell
    const socket = this.socket;
    for (const event of ['data', 'end', 'drain', 'close', 'error']) socket.removeAllListeners(event);
    this.phase = Phase.Closed;
    this.ctx.connections.delete(this);
    this.inBuf = null;
    // The admission goes with the connection: the HTTP/2 front gives it back on close.
    this.ctx.h2c!(socket, buf, this.admittedBy);
    return true;
  }

  /** Keeps bytes not consumable yet (a head in progress, a pipelined request). */
  private hold(chunk: Buffer): void {
    this.inBuf = this.inBuf === null ? chunk : Buffer.concat([this.inBuf, chunk]);
    if (this.phase === Phase.Exchange && this.inBuf.length > MAX_PIPELINE_BUFFER) this.pauseReads();
  }

  private parseHead(): void {
    let buf = this.inBuf!;
    // RFC 9112 2.2: empty lines before a request line are ignored.
    let skip = 0;
    while (skip + 1 < buf.length && buf[skip] === 13 && buf[skip + 1] === 10) skip += 2;
    if (skip > 0) {
      buf = buf.subarray(skip);
      this.inBuf = buf.length > 0 ? buf : null;
      if (this.inBuf === null) return;
    }
    const max = this.ctx.maxHeaderSize;
    const end = findHeadEnd(buf, this.scanFrom);
    if (end < 0) {
      if (buf.length > max) return this.rejectUnparsed(buf);
      this.scanFrom = buf.length - 3;
      return;
    }
    this.scanFrom = 0;
    if (end > max) return this.rejectUnparsed(buf);
    const status = parseRequestHead(
      buf.toString('latin1', 0, end),
      this.req,
      this.ctx.protection?.maxHeaders,
    );
    if (status !== 0) return this.reject(status, this.req.error);
    this.inBuf = end + 4 < buf.length ? buf.subarray(end + 4) : null;
    this.beginRequest();
  }

  /** A head too large to parse: 431, without a body when it starts like a HEAD request. */
  private rejectUnparsed(buf: Buffer): void {
    setUnparsedMethod(this.req, buf);
    this.reject(431, 'request head larger than maxHeaderSize');
  }

  private beginRequest(): void {
    const req = this.req;
    const ctx = this.ctx;
    this.startedAt = Date.now();
    this.selectCtx.clientIp = this.from.trustedPeer
      ? clientIpOf(req, this.from.peerIp, ctx.trusted)
      : this.from.peerIp;
    this.firstRequest = false;
    const protection = ctx.protection;
    const pool = ctx.router.select(req);
    if (protection !== null) {
      const refused = protection.checkRequest(
        req,
        this.selectCtx.clientIp,
        this.startedAt,
        ctx.router.matched,
      );
      if (refused !== 0) return this.refuse(refused, protection);
    }
    if (ctx.redirectPort !== null) return this.redirect(ctx.redirectPort());
    this.routed = true;
    this.reqFraming = req.framing;
    this.reqRemaining = req.contentLength;
    this.reqDone = req.framing === Framing.None;
    this.bodyBytes = 0;
    this.bodyCheckAt =
      this.reqDone || protection?.bodyMinRate === undefined
        ? Number.POSITIVE_INFINITY
        : this.startedAt + BODY_CHECK_MS;
    if (req.framing === Framing.Chunked) this.reqChunked.reset();
    this.keepAlive = !req.close && !ctx.closing;
    this.upBlocked = false;
    if (ctx.observer === null) this.reportStart = -1;
    else {
      this.reportStart = this.socket.bytesWritten;
      this.reportAt = performance.now();
    }
    this.phase = Phase.Exchange;
    // Body bytes that came with the head go out with it.
    let first: Buffer | null = null;
    if (!this.reqDone && this.inBuf !== null) {
      const held = this.inBuf;
      this.inBuf = null;
      first = this.takeBody(held);
      if (first === null) return;
    }
    // HTTP/1.0 clients cannot take chunked bodies: they get the data, delimited by our close.
    this.exchange.decodeChunked = req.minor === 0;
    const cookies = pool.affinity === null ? null : cookieHeader(req);
    this.exchange.start(pool, req, this.from, this.selectCtx, cookies, first, this.reqDone);
    this.updateReads();
  }

  /**
   * The part of `buf` that belongs to the current request's body, every byte of it checked;
   * what follows it is the next pipelined request, kept in inBuf. Null when the body's framing
   * is broken (the client has been answered).
   */
  private takeBody(buf: Buffer): Buffer | null {
    let used = buf.length;
    if (this.reqFraming === Framing.Length) {
      used = Math.min(this.reqRemaining, buf.length);
      this.reqRemaining -= used;
      if (this.reqRemaining === 0) this.reqDone = true;
    } else {
      // Checked before any of it is passed on: a malformed chunk never reaches a server.
      const r = this.reqChunked.feed(buf, 0);
      if (r === CHUNKED_ERROR) {
        this.abortRequestBody(`bad chunked body: ${this.reqChunked.error}`);
        return null;
      }
      if (r !== CHUNKED_MORE) {
        used = r;
        this.reqDone = true;
      }
    }
    this.bodyBytes += used;
    const max = this.ctx.protection?.maxBodySize;
    if (max !== undefined && this.bodyBytes > max) {
      this.ctx.protection!.bodyTooLarge();
      this.abortRequestBody('request body larger than limits.maxBodySize', false, 413);
      return null;
    }
    if (used === buf.length) return buf;
    const rest = buf.subarray(used);
    this.inBuf = this.inBuf === null ? rest : Buffer.concat([this.inBuf, rest]);
    return buf.subarray(0, used);
  }

  /** Forwards request body bytes that arrive after the head. */
  private forwardBody(buf: Buffer): void {
    const part = this.takeBody(buf);
    if (part === null) return;
    if (part.length > 0 && !this.exchange.writeBody(part)) this.block();
    if (this.reqDone) {
      if (this.exchange.busy) this.exchange.endBody();
      this.updateReads();
    }
  }

  private block(): void {
    this.upBlocked = true;
    this.pauseReads();
  }

  private onEnd(): void {
    this.clientEnded = true;
    switch (this.phase) {
      case Phase.Idle:
      case Phase.Head:
        // Nothing asked, or a request cut short: nothing to answer.
        this.socket.end();
        this.phase = Phase.Closed;
        return;
      case Phase.Tunnel:
        this.exchange.endTunnel();
        return;
      case Phase.Exchange:
        if (!this.reqDone) this.abortRequestBody('client closed before sending the whole body', true);
        return;
      default:
    }
  }

  private onClose(): void {
    this.admittedBy?.release(this.from.peerIp);
    this.phase = Phase.Closed;
    this.ctx.connections.delete(this);
    if (this.exchange.busy) this.exchange.cancel();
  }

  private pauseReads(): void {
    if (!this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    }
  }

  /** Reads from the client only when we can take the bytes: no upstream backlog, room to hold. */
  private updateReads(): void {
    let pause = false;
    switch (this.phase) {
      case Phase.Exchange:
        pause = this.reqDone
          ? this.inBuf !== null && this.inBuf.length > MAX_PIPELINE_BUFFER
          : this.upBlocked;
        break;
      case Phase.Tunnel:
        pause = this.upBlocked;
        break;
      default:
    }
    if (pause) this.pauseReads();
    else if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  // ---- what the exchange tells ----

  onBodyDrain(): void {
    this.upBlocked = false;
    this.updateReads();
  }

  onInterim(res: ResponseHead): void {
    // Interim responses (100 Continue, 103 Early Hints) go to HTTP/1.1 clients as they are.
    if (this.req.minor === 1) this.socket.write(`${statusLine(res)}${allFieldLines(res)}\r\n`, 'latin1');
  }

  onResponseHead(
    res: ResponseHead,
    framing: Framing,
    extra: string,
    buf: Buffer,
    from: number,
    to: number,
    _complete: boolean,
  ): boolean {
    this.status = res.status;
    // A body delimited by the close, or a response that starts before the request body is
    // complete (the next request's start cannot be found reliably): this connection ends.
    if (framing === Framing.UntilClose || !this.reqDone) this.keepAlive = false;
    // Built as bytes: the server's end-to-end lines copied as they came, ours after them.
    const w = HEAD_WRITER;
    w.reset();
    w.text(statusLine(res));
    writeEndToEndLines(res, w);
    w.text(extra);
    if (this.ctx.hsts !== '') {
      w.text('strict-transport-security: ');
      w.text(this.ctx.hsts);
      w.text('\r\n');
    }
    if (framing === Framing.Chunked) w.text('transfer-encoding: chunked\r\n');
    if (!this.keepAlive || this.ctx.closing) w.text('connection: close\r\n');
    else if (this.req.minor === 0) w.text('connection: keep-alive\r\n');
    w.text('\r\n');
    const out = this.socket;
    if (to - from <= SMALL_BODY) {
      // A body (up to 64 KiB) that came whole goes in the same buffer: one write, and no memory of its
      // own (an earlier try copied head and body into a new Buffer per response: the peak RSS
      // rose by 9 MB, off-heap memory waiting for the scavenge).
      w.bytes(buf, from, to);
      return w.flush(out);
    }
    out.cork();
    out.write(w.take());
    const ok = out.write(buf.subarray(from, to));
    out.uncork();
    this.wroteLent = true;
    return ok;
  }

  onResponseBody(chunk: Buffer): boolean {
    this.wroteLent = true;
    return this.socket.write(chunk);
  }

  onResponseEnd(): void {
    this.report(this.status);
    this.nextRequest();
  }

  onUpgrade(res: ResponseHead, rest: Buffer): void {
    this.status = res.status;
    this.socket.write(`${statusLine(res)}${allFieldLines(res)}\r\n`, 'latin1');
    this.phase = Phase.Tunnel;
    if (rest.length > 0) {
      this.socket.write(rest);
      this.wroteLent = true;
    }
    const held = this.inBuf;
    this.inBuf = null;
    if (held !== null && !this.exchange.writeTunnel(held)) this.upBlocked = true;
    this.updateReads();
  }

  onUpstreamEnd(): void {
    if (this.phase !== Phase.Tunnel) this.report(this.status);
    this.socket.end();
    this.phase = Phase.Closed;
    this.deadline = Date.now() + LINGER_MS;
  }

  onFailure(status: number, _why: string): void {
    // The exchange logged it, naming pool and server.
    const close = !this.keepAlive || !this.reqDone || this.ctx.closing;
    if (close) this.keepAlive = false;
    this.writeError(status, close);
    this.report(status);
    this.nextRequest();
  }

  onAbort(_why: string): void {
    this.socket.destroy();
    this.phase = Phase.Closed;
  }

  // ---- end of an exchange ----

  /** After a response: close, or go back to reading the next (maybe already buffered) request. */
  private nextRequest(): void {
    if (this.phase === Phase.Closed) return;
    if (!this.keepAlive || this.clientEnded || this.ctx.closing || !this.reqDone) {
      this.close();
      return;
    }
    this.phase = Phase.Idle;
    this.deadline = Date.now() + this.ctx.timeouts.idle;
    this.updateReads();
    // A pipelined request already buffered: handle it on the next tick, so that a long pipeline
    // answered without I/O (errors) never grows the stack.
    if (this.inBuf !== null) process.nextTick(() => this.resumePipeline());
  }

  private resumePipeline(): void {
    if (this.phase !== Phase.Idle || this.inBuf === null) return;
    try {
      this.phase = Phase.Head;
      this.deadline = Date.now() + this.ctx.timeouts.requestHead;
      this.parseHead();
    } catch (err) {
      this.internalError(err);
    }
  }

  private close(): void {
    this.phase = Phase.Closed;
    this.deadline = Date.now() + LINGER_MS;
    this.socket.end();
  }

  /** Called by the listener's sweep when `bodyCheckAt` has passed: a slow body is cut with 408. */
  checkBodyRate(now: number): void {
    if (this.reqDone || this.phase !== Phase.Exchange) {
      this.bodyCheckAt = Number.POSITIVE_INFINITY;
      return;
    }
    this.bodyCheckAt = now + BODY_CHECK_MS;
    if (this.ctx.protection?.bodyTooSlow(this.bodyBytes, now - this.startedAt) === true) {
      this.bodyCheckAt = Number.POSITIVE_INFINITY;
      this.abortRequestBody('request body slower than timeouts.bodyMinRate', false, 408);
    }
  }

  /** Called by the listener's sweep when `deadline` has passed. */
  onTimeout(): void {
    try {
      switch (this.phase) {
        case Phase.Idle:
          return this.close();
        case Phase.Head:
          return this.reject(408, 'request head not received in time');
        case Phase.Exchange:
        case Phase.Tunnel:
          if (this.exchange.busy) return this.exchange.onTimeout();
          return this.close();
        case Phase.Closed:
          this.socket.destroy();
          return;
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  /**
   * Shutdown: an exchange in flight finishes and its connection closes after it. An idle
   * keep-alive connection is read from for `graceMs` more, since the client's next request may
   * already be on the wire (closing at once would reset it); what arrives is answered with
   * `Connection: close`, and the connection closes when the grace ends unused.
   */
  shutdown(graceMs: number): void {
    if (this.idle) this.deadline = Math.min(this.deadline, Date.now() + graceMs);
  }

  // ---- errors ----

  /** A malformed or unacceptable request: answer and close (the stream can't be trusted). */
  private reject(status: number, why: string): void {
    this.ctx.note(
      `reject ${status}`,
      `${this.ctx.name}: ${status} for client ${this.from.peerIp}: ${why}`,
      false,
    );
    this.routed = false;
    this.keepAlive = false;
    this.reqDone = true;
    this.writeError(status, true);
    this.report(status);
    this.inBuf = null;
    this.close();
  }

  private abortRequestBody(why: string, clientGone = false, status = 400): void {
    const responded = this.exchange.responded;
    if (this.exchange.busy) this.exchange.cancel();
    this.ctx.note(`bad body: ${why}`, `${this.ctx.name}: client ${this.from.peerIp}: ${why}`, false);
    if (clientGone || responded) {
      this.socket.destroy();
      this.phase = Phase.Closed;
      return;
    }
    this.reqDone = true;
    this.writeError(status, true);
    this.report(status);
    this.close();
  }

  private writeError(status: number, close: boolean, extra = ''): void {
    this.socket.write(http1ErrorResponse(status, this.req.method === 'HEAD', close, extra), 'latin1');
  }

  /**
   * A well-formed request that protection refuses (429 over the rate, 413, 414): answered
   * without reaching a server. A request with a body closes the connection: its body is not read.
   */
  private refuse(status: number, protection: ListenerProtection): void {
    const req = this.req;
    this.routed = false;
    this.ctx.note(
      `refuse ${status}`,
      `${this.ctx.name}: ${status} for client ${this.selectCtx.clientIp}: ${req.method} ${req.path} refused by protection`,
      false,
    );
    // A blocked client's connection is closed: its next one is refused at accept, cheaply.
    this.keepAlive = status !== 403 && req.framing === Framing.None && !req.close && !this.ctx.closing;
    this.reqDone = true;
    const close = !this.keepAlive;
    this.phase = Phase.Exchange;
    this.writeError(status, close, status === 429 ? protection.rateHeaders() : '');
    this.refusal = protection.lastReason ?? undefined;
    this.report(status);
    this.refusal = undefined;
    if (close) this.inBuf = null;
    this.nextRequest();
  }

  private internalError(err: unknown): void {
    this.ctx.log.error(`${this.ctx.name}: internal error: ${(err as Error)?.stack ?? String(err)}`);
    const responded = this.exchange.responded;
    if (this.exchange.busy) this.exchange.cancel();
    if (!responded && this.phase !== Phase.Closed) this.writeError(500, true);
    this.socket.destroy();
    this.phase = Phase.Closed;
  }

  /** Tells the traffic observer about the exchange that just ended. */
  private report(status: number): void {
    // Detection judges the servers' answers, not the refusals of protection itself.
    if (this.routed) this.ctx.protection?.onAnswer(this.selectCtx.clientIp, status, Date.now());
    const observer = this.ctx.observer;
    if (observer === null) return;
    const r = this.req;
    const tried = this.exchange.selection.tried;
    const now = Date.now();
    // Bytes read since the last report: this request's head and body (and any pipelined bytes).
    const read = this.socket.bytesRead;
    const bytesIn = read - this.reportRead;
    this.reportRead = read;
    const q = r.target.indexOf('?');
    observer.onExchange({
      listener: this.ctx.name,
      protocol: 'http',
      pool: this.routed ? (this.exchange.pool?.name ?? '') : '',
      server: this.routed && tried.length > 0 ? tried[tried.length - 1]!.id : null,
      clientIp: this.selectCtx.clientIp,
      method: r.method,
      path: r.path,
      query: q < 0 ? '' : r.target.slice(q + 1),
      host: r.hostHeader,
      userAgent: headerValue(r, 'user-agent') ?? '',
      requestId: loggedRequestId(r),
      status,
      bytesOut: this.reportStart >= 0 ? this.socket.bytesWritten - this.reportStart : 0,
      bytesIn,
      durationMs: this.reportStart >= 0 ? performance.now() - this.reportAt : now - this.startedAt,
      retries: this.routed ? Math.max(0, tried.length - 1) : 0,
      at: now,
      refusedBy: this.refusal,
    });
  }
}

let lastStatus = 0;
let lastReason = '';
let lastStatusLine = '';

/** The status line sent to the client; the last one is kept (servers mostly answer 200 OK). */
function statusLine(res: ResponseHead): string {
  if (res.status !== lastStatus || res.reason !== lastReason) {
    lastStatus = res.status;
    lastReason = res.reason;
    lastStatusLine = `HTTP/1.1 ${res.status} ${res.reason}\r\n`;
  }
  return lastStatusLine;
}

import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { PickContext } from '../../balancing/policy.js';
import type { CidrSet } from '../../core/cidr.js';
import { unmapIPv4 } from '../../core/cidr.js';
import type { Logger } from '../../core/log.js';
import type { TrafficObserver } from '../../core/observer.js';
import { Outcome, type Pool } from '../../core/pool.js';
import type { Server } from '../../core/server.js';
import { CHUNKED_ERROR, CHUNKED_MORE, ChunkedDecoder } from './chunkedDecoder.js';
import {
  Framing,
  findHeadEnd,
  isHopByHop,
  newRequestHead,
  newResponseHead,
  parseRequestHead,
  parseResponseHead,
  rawLines,
  responseHasBody,
} from './headParser.js';
import type { Router } from './router.js';
import type { UpstreamConnection, UpstreamOwner, UpstreamPool } from './upstreamPool.js';

/** What a client connection needs from its listener. Swappable fields apply on reload. */
export interface ListenerContext {
  readonly name: string;
  router: Router;
  trusted: CidrSet | null;
  maxHeaderSize: number;
  timeouts: { requestHead: number; idle: number };
  /** Shutting down: finish the current exchange, then close. */
  closing: boolean;
  /** Told of every finished exchange (metrics, access log), when set. */
  observer: TrafficObserver | null;
  readonly log: Logger;
  /** Idle keep-alive connections to servers (owned by the runtime). */
  readonly upstreams: UpstreamPool;
  readonly connections: Set<ClientConnection>;
}

enum Phase {
  /** Between requests (keep-alive), or before the first byte. */
  Idle = 0,
  /** Receiving a request head. */
  Head = 1,
  /** Opening a connection to the chosen server. */
  Connecting = 2,
  /** Request sent (or its body streaming) and response being received or relayed. */
  Exchange = 3,
  /** After a 101 Switching Protocols: bytes are piped both ways. */
  Tunnel = 4,
  Closed = 5,
}

enum Res {
  Head = 0,
  Body = 1,
  Done = 2,
}

/** Pipelined bytes held while a response is in flight, before we stop reading. */
const MAX_PIPELINE_BUFFER = 64 * 1024;
/** Bodies up to this size that arrive with their head are sent in the same write. */
const SMALL_BODY = 4096;
/** Upstream response heads larger than this are garbage. */
const MAX_RESPONSE_HEAD = 64 * 1024;
/** Idle limit of upgraded (WebSocket) connections. */
const TUNNEL_IDLE_MS = 3_600_000;
/** A closed-but-lingering client socket is destroyed after this long. */
const LINGER_MS = 2000;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/**
 * One client connection of an HTTP listener and the exchanges on it, one at a time (pipelined
 * requests wait their turn). A request is parsed strictly, routed to a pool, leased to a server,
 * and forwarded over a pooled raw keep-alive connection with its body streamed; the response is
 * parsed strictly and relayed, streamed, with backpressure both ways.
 */
export class ClientConnection implements UpstreamOwner {
  readonly socket: Socket;
  private readonly ctx: ListenerContext;
  private readonly peerIp: string;
  private readonly trustedPeer: boolean;
  private readonly pickCtx: PickContext;

  private phase = Phase.Idle;
  /** When the current phase times out (ms since epoch); checked by the listener's sweep. */
  deadline: number;
  private inBuf: Buffer | null = null;
  private scanFrom = 0;
  private readPaused = false;
  private clientEnded = false;

  private readonly req = newRequestHead();
  private reqHead = '';
  private reqFraming = Framing.None;
  private reqRemaining = 0;
  private readonly reqChunked = new ChunkedDecoder();
  private reqDone = true;
  private keepAlive = true;

  private pool: Pool | null = null;
  /** The leased server, until the lease is released. */
  private server: Server | null = null;
  private readonly tried: Server[] = [];
  /** A refused connect to the current server was already tried again. */
  private connectRetried = false;
  /** The server this request's client is pinned to (sticky sessions), if any. */
  private pinned: Server | undefined = undefined;
  /** socket.bytesWritten when the exchange began; -1 while nobody observes traffic. */
  private reportStart = -1;
  /** performance.now() when an observed exchange began: sub-millisecond durations. */
  private reportAt = 0;
  private up: UpstreamConnection | null = null;
  private startedAt = 0;
  private ttfb = 0;
  private lastStatus = 502;
  private lastError = '';

  private readonly res = newResponseHead();
  private resPhase = Res.Done;
  private resBuf: Buffer | null = null;
  private resFraming = Framing.None;
  private resRemaining = 0;
  private readonly resChunked = new ChunkedDecoder();
  /** HTTP/1.0 client and a chunked response: relay only the data, then close. */
  private resStrip = false;
  /** A final response head was sent to the client for the current request. */
  private resStarted = false;
  private upReusable = false;
  private readonly stripSink: (b: Buffer, s: number, e: number) => void;

  constructor(socket: Socket, ctx: ListenerContext) {
    this.socket = socket;
    this.ctx = ctx;
    this.peerIp = unmapIPv4(socket.remoteAddress ?? '');
    this.trustedPeer = ctx.trusted?.has(this.peerIp) ?? false;
    this.pickCtx = { clientIp: this.peerIp, hashKey: undefined };
    // The first request must arrive within the request-head timeout, later ones within idle.
    this.deadline = Date.now() + ctx.timeouts.requestHead;
    this.stripSink = (b, s, e) => {
      if (!this.socket.write(b.subarray(s, e))) this.up?.socket.pause();
    };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('drain', () => this.onDrain());
    socket.on('error', () => {}); // 'close' follows; resets from clients are routine
    socket.on('close', () => this.onClose());
    ctx.connections.add(this);
  }

  /** Idle between requests: safe to close now (shutdown). */
  get idle(): boolean {
    return this.phase === Phase.Idle && this.inBuf === null;
  }

  // ---- client side ----

  private onData(chunk: Buffer): void {
    try {
      switch (this.phase) {
        case Phase.Tunnel:
          this.deadline = Date.now() + TUNNEL_IDLE_MS;
          if (this.up !== null && !this.up.socket.write(chunk)) this.pauseReads();
          return;
        case Phase.Exchange:
          if (!this.reqDone) {
            this.deadline = Date.now() + this.pool!.options.timeouts.response;
            this.forwardBody(chunk);
            return;
          }
          this.hold(chunk);
          return;
        case Phase.Connecting:
          this.hold(chunk);
          return;
        case Phase.Idle:
          this.phase = Phase.Head;
          this.deadline = Date.now() + this.ctx.timeouts.requestHead;
          this.hold(chunk);
          this.parseHead();
          return;
        case Phase.Head:
          this.hold(chunk);
          this.parseHead();
          return;
        case Phase.Closed:
          return;
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  /** Keeps bytes not consumable yet (a head in progress, a body before the upstream is ready). */
  private hold(chunk: Buffer): void {
    this.inBuf = this.inBuf === null ? chunk : Buffer.concat([this.inBuf, chunk]);
    if (this.phase >= Phase.Connecting && this.inBuf.length > MAX_PIPELINE_BUFFER) this.pauseReads();
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
      if (buf.length > max) return this.reject(431, 'request head larger than maxHeaderSize');
      this.scanFrom = buf.length - 3;
      return;
    }
    this.scanFrom = 0;
    if (end > max) return this.reject(431, 'request head larger than maxHeaderSize');
    const status = parseRequestHead(buf.toString('latin1', 0, end), this.req);
    if (status !== 0) return this.reject(status, this.req.error);
    this.inBuf = end + 4 < buf.length ? buf.subarray(end + 4) : null;
    this.beginRequest();
  }

  private beginRequest(): void {
    const req = this.req;
    this.startedAt = Date.now();
    this.pickCtx.clientIp = this.trustedPeer ? this.forwardedClientIp() : this.peerIp;
    this.pool = this.ctx.router.select(req);
    this.reqFraming = req.framing;
    this.reqRemaining = req.contentLength;
    this.reqDone = req.framing === Framing.None;
    if (req.framing === Framing.Chunked) this.reqChunked.reset();
    this.keepAlive = !req.close && !this.ctx.closing;
    this.resStarted = false;
    this.resPhase = Res.Done;
    this.tried.length = 0;
    this.lastStatus = 502;
    this.lastError = '';
    this.reqHead = this.buildRequestHead();
    this.pinned = undefined;
    if (this.ctx.observer === null) this.reportStart = -1;
    else {
      this.reportStart = this.socket.bytesWritten;
      this.reportAt = performance.now();
    }
    const affinity = this.pool.affinity;
    if (affinity === null) return this.dispatch();
    const found = affinity.pinned(this.pickCtx.clientIp, this.cookies());
    if (!(found instanceof Promise)) {
      this.pinned = found;
      return this.dispatch();
    }
    // A shared stick table is being asked: hold the client's bytes meanwhile.
    this.phase = Phase.Connecting;
    this.deadline = Date.now() + this.pool.options.timeouts.connect;
    this.pauseReads();
    found.then(
      (server) => {
        if (this.phase !== Phase.Connecting || this.up !== null) return;
        this.pinned = server;
        this.dispatch();
      },
      () => {
        if (this.phase === Phase.Connecting && this.up === null) this.dispatch();
      },
    );
  }

  /** The request's Cookie header(s), joined, or null. */
  private cookies(): string | null {
    const r = this.req;
    let out: string | null = null;
    for (let i = 0; i < r.count; i++) {
      if (r.names[i] === 'cookie') out = out === null ? r.values[i]! : `${out}; ${r.values[i]}`;
    }
    return out;
  }

  /** Leases a server (excluding those tried) and sends the request over a pooled or new connection. */
  private dispatch(): void {
    const pool = this.pool!;
    let server: Server | undefined;
    const pinned = this.pinned;
    if (pinned !== undefined && this.tried.length === 0 && pool.acquireServer(pinned)) server = pinned;
    else {
      // No affinity, or its server cannot take the request: the policy chooses (for ip-hash,
      // the next server on the ring).
      if (pinned !== undefined && this.tried.length === 0) pool.reassigned++;
      server = pool.acquire(this.pickCtx, this.tried);
    }
    if (server === undefined) {
      if (this.tried.length === 0) return this.respondError(503, `pool ${pool.name} has no server available`);
      return this.respondError(this.lastStatus, this.lastError);
    }
    this.server = server;
    this.tried.push(server);
    this.connectRetried = false;
    const list = this.ctx.upstreams.listFor(server, pool.options);
    const up = list.take(this);
    if (up !== null) {
      this.up = up;
      this.sendRequest();
    } else {
      this.openConnection(list.open(this));
    }
  }

  private openConnection(up: UpstreamConnection): void {
    this.up = up;
    this.phase = Phase.Connecting;
    this.deadline = Date.now() + this.pool!.options.timeouts.connect;
    this.pauseReads();
  }

  onUpstreamConnect(up: UpstreamConnection): void {
    if (up === this.up && this.phase === Phase.Connecting) this.sendRequest();
  }

  private sendRequest(): void {
    const out = this.up!.socket;
    this.phase = Phase.Exchange;
    this.resPhase = Res.Head;
    this.resBuf = null;
    this.deadline = Date.now() + this.pool!.options.timeouts.response;
    const head = this.req.hostHeader === '' ? this.buildRequestHead() : this.reqHead;
    if (this.reqDone || this.inBuf === null) {
      // No body bytes at hand: one plain write (cork would force the slower buffered path).
      out.write(head, 'latin1');
    } else {
      out.cork();
      out.write(head, 'latin1');
      const held = this.inBuf;
      this.inBuf = null;
      this.forwardBody(held);
      out.uncork();
    }
    this.updateReads();
  }

  /** Forwards request body bytes; whatever follows the body is the next pipelined request. */
  private forwardBody(buf: Buffer): void {
    let used = buf.length;
    if (this.reqFraming === Framing.Length) {
      used = Math.min(this.reqRemaining, buf.length);
      this.reqRemaining -= used;
      this.writeUp(used === buf.length ? buf : buf.subarray(0, used));
      if (this.reqRemaining === 0) this.reqDone = true;
    } else {
      const r = this.reqChunked.feed(buf, 0);
      if (r === CHUNKED_ERROR) return this.abortRequestBody(`bad chunked body: ${this.reqChunked.error}`);
      if (r === CHUNKED_MORE) this.writeUp(buf);
      else {
        used = r;
        this.writeUp(r === buf.length ? buf : buf.subarray(0, r));
        this.reqDone = true;
      }
    }
    if (used < buf.length) {
      const rest = buf.subarray(used);
      this.inBuf = this.inBuf === null ? rest : Buffer.concat([this.inBuf, rest]);
    }
    if (this.reqDone) {
      if (this.resPhase === Res.Done) this.finishExchange();
      else this.updateReads();
    }
  }

  private writeUp(part: Buffer): void {
    if (!this.up!.socket.write(part)) this.pauseReads();
  }

  onUpstreamDrain(up: UpstreamConnection): void {
    if (up === this.up) this.updateReads();
  }

  private onDrain(): void {
    const up = this.up;
    if (up?.socket.isPaused()) up.socket.resume();
  }

  private onEnd(): void {
    this.clientEnded = true;
    switch (this.phase) {
      case Phase.Idle:
        this.socket.end();
        this.phase = Phase.Closed;
        return;
      case Phase.Head:
        // A request cut short: nothing to answer.
        this.socket.end();
        this.phase = Phase.Closed;
        return;
      case Phase.Tunnel:
        this.up?.socket.end();
        return;
      default:
        if (!this.reqDone) this.abortRequestBody('client closed before sending the whole body', true);
    }
  }

  private onClose(): void {
    this.phase = Phase.Closed;
    this.ctx.connections.delete(this);
    const up = this.up;
    if (up !== null) {
      this.up = null;
      up.destroy();
    }
    this.releaseLease(Outcome.Cancelled);
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
      case Phase.Connecting:
        pause = true;
        break;
      case Phase.Exchange:
        pause = this.reqDone
          ? this.inBuf !== null && this.inBuf.length > MAX_PIPELINE_BUFFER
          : this.up?.socket.writableNeedDrain === true;
        break;
      case Phase.Tunnel:
        pause = this.up?.socket.writableNeedDrain === true;
        break;
    }
    if (pause) this.pauseReads();
    else if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  // ---- upstream side ----

  onUpstreamData(up: UpstreamConnection, chunk: Buffer): void {
    try {
      if (up !== this.up) return up.destroy();
      if (this.phase === Phase.Tunnel) {
        this.deadline = Date.now() + TUNNEL_IDLE_MS;
        if (!this.socket.write(chunk)) up.socket.pause();
        return;
      }
      this.deadline = Date.now() + this.pool!.options.timeouts.response;
      if (this.resPhase === Res.Body) return this.forwardResponseBody(chunk);
      if (this.resPhase === Res.Head) return this.readResponseHead(chunk);
      // Bytes after a complete response: the server is out of step, never reuse it.
      this.upReusable = false;
    } catch (err) {
      this.internalError(err);
    }
  }

  private readResponseHead(chunk: Buffer): void {
    let buf = this.resBuf === null ? chunk : Buffer.concat([this.resBuf, chunk]);
    for (;;) {
      const end = findHeadEnd(buf, 0);
      if (end < 0) {
        if (buf.length > MAX_RESPONSE_HEAD) return this.upstreamBroken('response head too large');
        this.resBuf = buf;
        return;
      }
      const res = this.res;
      if (parseResponseHead(buf.toString('latin1', 0, end), res) !== 0) return this.upstreamBroken(res.error);
      const rest = end + 4;
      if (res.status >= 200) {
        this.resBuf = null;
        this.startResponse(buf, rest);
        return;
      }
      if (res.status === 101) {
        if (!this.req.upgrade) return this.upstreamBroken('101 without an upgrade request');
        return this.startTunnel(buf.subarray(rest));
      }
      // Interim responses (100 Continue, 103 Early Hints) go to HTTP/1.1 clients as they are.
      if (this.req.minor === 1) this.socket.write(this.buildResponseHead(false, true), 'latin1');
      if (rest >= buf.length) {
        this.resBuf = null;
        return;
      }
      buf = buf.subarray(rest);
    }
  }

  /**
   * Sends the response head to the client, with the body bytes that came along with it
   * (`buf` from `rest` on).
   */
  private startResponse(buf: Buffer, rest: number): void {
    const res = this.res;
    const req = this.req;
    this.ttfb = Date.now() - this.startedAt;
    this.resStrip = false;
    if (!responseHasBody(req.method, res.status)) this.resFraming = Framing.None;
    else {
      this.resFraming = res.framing;
      if (res.framing === Framing.Chunked) {
        this.resChunked.reset();
        if (req.minor === 0) {
          this.resStrip = true;
          this.keepAlive = false;
        }
      } else if (res.framing === Framing.Length) this.resRemaining = res.contentLength;
      else if (res.framing === Framing.UntilClose) this.keepAlive = false;
    }
    this.upReusable = !res.close && res.minor === 1 && this.resFraming !== Framing.UntilClose;
    // A response that starts before the request body is complete: we cannot find the next
    // request's start reliably, so this connection ends with this response.
    if (!this.reqDone) this.keepAlive = false;
    const affinity = this.pool!.affinity;
    const head = this.buildResponseHead(
      !this.keepAlive || this.ctx.closing,
      false,
      affinity === null
        ? ''
        : affinity.onResponse(
            this.pickCtx.clientIp,
            this.tried.at(-1)!,
            this.pinned,
            this.setCookies(),
            false,
          ),
    );
    const out = this.socket;
    const extra = buf.length - rest;
    this.resStarted = true;
    if (this.resFraming === Framing.None) {
      out.write(head, 'latin1');
      // Bytes after a bodiless response: the server is out of step, never reuse it.
      if (extra > 0) this.upReusable = false;
      return this.finishExchange();
    }
    if (this.resFraming === Framing.Length && extra >= this.resRemaining && this.resRemaining <= SMALL_BODY) {
      // A small response that arrived whole (the common case): one latin1 string (byte for
      // byte), one plain write, no cork and no buffer object.
      const bodyLen = this.resRemaining;
      out.write(head + buf.toString('latin1', rest, rest + bodyLen), 'latin1');
      this.resRemaining = 0;
      if (extra > bodyLen) this.upReusable = false;
      return this.finishExchange();
    }
    this.resPhase = Res.Body;
    if (extra === 0) {
      out.write(head, 'latin1');
      return;
    }
    out.cork();
    out.write(head, 'latin1');
    this.forwardResponseBody(buf.subarray(rest));
    out.uncork();
  }

  private forwardResponseBody(buf: Buffer): void {
    const out = this.socket;
    let ok = true;
    switch (this.resFraming) {
      case Framing.Length: {
        const take = Math.min(this.resRemaining, buf.length);
        this.resRemaining -= take;
        ok = out.write(take === buf.length ? buf : buf.subarray(0, take));
        if (this.resRemaining === 0) {
          if (take < buf.length) this.upReusable = false;
          return this.finishExchange();
        }
        break;
      }
      case Framing.Chunked: {
        const r = this.resChunked.feed(buf, 0, this.resStrip ? this.stripSink : undefined);
        if (r === CHUNKED_ERROR) return this.upstreamBroken(`bad chunked response: ${this.resChunked.error}`);
        if (!this.resStrip) ok = out.write(r === CHUNKED_MORE || r === buf.length ? buf : buf.subarray(0, r));
        if (r !== CHUNKED_MORE) {
          if (r < buf.length) this.upReusable = false;
          return this.finishExchange();
        }
        break;
      }
      default:
        ok = out.write(buf);
    }
    if (!ok) this.up?.socket.pause();
  }

  private startTunnel(rest: Buffer): void {
    this.ttfb = Date.now() - this.startedAt;
    this.socket.write(this.buildResponseHead(false, true), 'latin1');
    this.resStarted = true;
    this.resPhase = Res.Done;
    this.phase = Phase.Tunnel;
    this.deadline = Date.now() + TUNNEL_IDLE_MS;
    if (rest.length > 0) this.socket.write(rest);
    if (this.inBuf !== null) {
      this.up!.socket.write(this.inBuf);
      this.inBuf = null;
    }
    this.updateReads();
  }

  onUpstreamClose(up: UpstreamConnection, error: Error | undefined): void {
    if (up !== this.up) return;
    this.up = null;
    try {
      this.upstreamClosed(up, error);
    } catch (err) {
      this.internalError(err);
    }
  }

  private upstreamClosed(up: UpstreamConnection, error: Error | undefined): void {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (this.phase === Phase.Tunnel) {
      this.releaseLease(Outcome.Success);
      this.socket.end();
      this.phase = Phase.Closed;
      return;
    }
    if (this.phase === Phase.Connecting) {
      // A listening server refuses a connect only when the SYN meets a leftover socket of an
      // earlier connection on the same ports: try once more at once, from another port, before
      // counting the server as failed.
      if (code === 'ECONNREFUSED' && !this.connectRetried && this.server !== null) {
        this.connectRetried = true;
        return this.openConnection(this.ctx.upstreams.listFor(this.server, this.pool!.options).open(this));
      }
      return this.retryOrFail(Outcome.Failure, 502, `connect ${code ?? 'failed'}`, 'connect-failure');
    }
    if (this.phase !== Phase.Exchange || this.resPhase === Res.Done) return;
    if (this.resPhase === Res.Head && !this.resStarted) {
      // Never replayed unless idempotent: the server may have acted on it before closing.
      const replayable = this.replayable();
      // A reused keep-alive connection the server had just closed: not the server's fault;
      // send the request again to the same server on a new connection (only once: it is new).
      if (up.reused && replayable && this.server !== null) {
        return this.openConnection(this.ctx.upstreams.listFor(this.server, this.pool!.options).open(this));
      }
      const why = `server closed the connection before answering${code ? ` (${code})` : ''}`;
      if (replayable) return this.retryOrFail(Outcome.Failure, 502, why, 'reset');
      this.releaseLease(Outcome.Failure);
      return this.respondError(502, why);
    }
    if (this.resFraming === Framing.UntilClose && error === undefined) {
      // The end of a body delimited by the connection's close.
      this.releaseLease(Outcome.Success, this.res.status);
      this.socket.end();
      this.phase = Phase.Closed;
      return;
    }
    this.releaseLease(Outcome.Failure);
    this.log(`server closed the connection mid-response${code ? ` (${code})` : ''}`);
    this.socket.destroy();
  }

  /**
   * The request can be sent again: idempotent, without a body (so nothing of it was consumed),
   * and nothing of a response received yet.
   */
  private replayable(): boolean {
    return this.reqFraming === Framing.None && this.resBuf === null && IDEMPOTENT.has(this.req.method);
  }

  /** The server failed before anything was sent to the client: another server, or an error. */
  private retryOrFail(
    outcome: Outcome,
    status: number,
    why: string,
    kind: 'connect-failure' | 'reset' | 'timeout',
  ): void {
    const server = this.server;
    this.releaseLease(outcome);
    this.lastStatus = status;
    this.lastError = `${why} (server ${server?.id ?? '?'})`;
    const retries = this.pool!.options.retries;
    if (this.tried.length <= retries.attempts && retries.on.includes(kind)) {
      this.ctx.log.info(`${this.ctx.name}: ${this.req.method} ${this.req.path}: ${this.lastError}, retrying`);
      return this.dispatch();
    }
    this.respondError(status, this.lastError);
  }

  private upstreamBroken(why: string): void {
    const up = this.up;
    this.up = null;
    up?.destroy();
    this.releaseLease(Outcome.Failure);
    if (this.resStarted) {
      this.log(why);
      this.socket.destroy();
      this.phase = Phase.Closed;
      return;
    }
    this.respondError(502, `${why} (server ${this.tried[this.tried.length - 1]?.id ?? '?'})`);
  }

  // ---- end of an exchange ----

  private finishExchange(): void {
    this.resPhase = Res.Done;
    if (!this.reqDone) {
      // Response complete while the request body is still coming: wait for it to finish so
      // the upstream connection stays in step; the client connection ends afterwards anyway.
      this.upReusable = false;
    }
    this.releaseLease(Outcome.Success, this.res.status);
    this.report(this.res.status);
    const up = this.up;
    if (up !== null) {
      this.up = null;
      if (this.upReusable && this.reqDone) {
        this.ctx.upstreams.listFor(up.server, this.pool!.options).put(up, this.res.keepAliveMs);
      } else up.destroy();
    }
    this.nextRequest();
  }

  /** After a response: close, or go back to reading the next (maybe already buffered) request. */
  private nextRequest(): void {
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

  private releaseLease(outcome: Outcome, status = 0): void {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    const ms = outcome === Outcome.Success ? this.ttfb : Date.now() - this.startedAt;
    this.pool!.release(server, outcome, ms, status);
  }

  /** Called by the listener's sweep when `deadline` has passed. */
  onTimeout(): void {
    try {
      switch (this.phase) {
        case Phase.Idle:
          return this.close();
        case Phase.Head:
          return this.reject(408, 'request head not received in time');
        case Phase.Connecting: {
          const up = this.up;
          this.up = null;
          up?.destroy();
          return this.retryOrFail(Outcome.Failure, 504, 'connect timeout', 'connect-failure');
        }
        case Phase.Exchange: {
          const up = this.up;
          this.up = null;
          up?.destroy();
          if (!this.resStarted && this.replayable()) {
            const why = `server did not answer within ${this.pool!.options.timeouts.response}ms`;
            return this.retryOrFail(Outcome.Failure, 504, why, 'timeout');
          }
          this.releaseLease(Outcome.Failure);
          if (this.resStarted) {
            this.log('server stopped sending the response (timeout)');
            this.socket.destroy();
            return;
          }
          return this.respondError(
            504,
            `server did not answer in time (server ${this.tried.at(-1)?.id ?? '?'})`,
          );
        }
        case Phase.Tunnel:
          this.up?.destroy();
          this.up = null;
          this.releaseLease(Outcome.Success);
          this.socket.destroy();
          return;
        case Phase.Closed:
          this.socket.destroy();
          return;
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  /** Shutdown: close now if idle, else after the exchange in flight. */
  shutdown(): void {
    if (this.idle) this.close();
  }

  // ---- errors ----

  /** A malformed or unacceptable request: answer and close (the stream can't be trusted). */
  private reject(status: number, why: string): void {
    this.ctx.log.info(`${this.ctx.name}: ${status} for client ${this.peerIp}: ${why}`);
    this.keepAlive = false;
    this.reqDone = true;
    this.writeError(status, true);
    this.report(status);
    this.inBuf = null;
    this.close();
  }

  private abortRequestBody(why: string, clientGone = false): void {
    const up = this.up;
    this.up = null;
    up?.destroy();
    this.releaseLease(Outcome.Cancelled);
    this.ctx.log.info(`${this.ctx.name}: client ${this.peerIp}: ${why}`);
    if (clientGone || this.resStarted) {
      this.socket.destroy();
      this.phase = Phase.Closed;
      return;
    }
    this.reqDone = true;
    this.writeError(400, true);
    this.close();
  }

  /** A 5xx of ours for the current request (nothing of the real response was sent). */
  private respondError(status: number, why: string): void {
    this.log(`${status}: ${why}`);
    if (this.resStarted) {
      this.socket.destroy();
      this.phase = Phase.Closed;
      return;
    }
    const up = this.up;
    this.up = null;
    up?.destroy();
    this.resPhase = Res.Done;
    const close = !this.keepAlive || !this.reqDone || this.ctx.closing;
    if (close) this.keepAlive = false;
    this.writeError(status, close);
    this.report(status);
    this.nextRequest();
  }

  private writeError(status: number, close: boolean): void {
    const text = STATUS_CODES[status] ?? 'Error';
    const body = this.req.method === 'HEAD' ? '' : `${status} ${text}\n`;
    let head = `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n`;
    if (status === 503) head += 'retry-after: 1\r\n';
    if (close) head += 'connection: close\r\n';
    this.resStarted = true;
    this.socket.write(`${head}\r\n${body}`, 'latin1');
  }

  private internalError(err: unknown): void {
    this.ctx.log.error(`${this.ctx.name}: internal error: ${(err as Error)?.stack ?? String(err)}`);
    const up = this.up;
    this.up = null;
    up?.destroy();
    this.releaseLease(Outcome.Cancelled);
    if (!this.resStarted && this.phase !== Phase.Closed) this.writeError(500, true);
    this.socket.destroy();
    this.phase = Phase.Closed;
  }

  private log(msg: string): void {
    const r = this.req;
    this.ctx.log.warn(
      `${this.ctx.name}: ${r.method} ${r.path} from ${this.pickCtx.clientIp} pool ${this.pool?.name}: ${msg}`,
    );
  }

  // ---- heads ----

  /**
   * The head sent to the server: unchanged header lines forwarded as raw runs, hop-by-hop fields
   * dropped, X-Forwarded-* and Via added.
   */
  private buildRequestHead(): string {
    const r = this.req;
    let h = `${r.method} ${r.target} HTTP/1.1\r\n`;
    let xff = '';
    let upgrade = '';
    let keepProto = false;
    let keepHost = false;
    const tokens = r.connectionTokens;
    let run = -1;
    for (let i = 0; i < r.count; i++) {
      const name = r.names[i]!;
      let keep = true;
      if (isHopByHop(name)) {
        if (name === 'upgrade' && r.upgrade) upgrade = r.values[i]!;
        keep = false;
      } else if (tokens?.includes(name)) {
        keep = false;
      } else if (name.length >= 15 && name.startsWith('x-forwarded-')) {
        if (name === 'x-forwarded-for') {
          xff = xff === '' ? r.values[i]! : `${xff}, ${r.values[i]}`;
          keep = false;
        } else if (name === 'x-forwarded-proto') {
          // X-Forwarded-Proto/Host are believed only from trusted proxies.
          keep = this.trustedPeer;
          keepProto ||= keep;
        } else if (name === 'x-forwarded-host') {
          keep = this.trustedPeer;
          keepHost ||= keep;
        }
      }
      if (keep) {
        if (run < 0) run = i;
      } else if (run >= 0) {
        h += rawLines(r, run, i);
        run = -1;
      }
    }
    if (run >= 0) h += rawLines(r, run, r.count);
    // HTTP/1.0 requests may lack Host; HTTP/1.1 servers require one: name the server.
    if (r.hostHeader === '') h += `host: ${this.server?.address ?? 'localhost'}\r\n`;
    if (r.framing === Framing.Chunked) h += 'transfer-encoding: chunked\r\n';
    if (upgrade !== '') h += `connection: upgrade\r\nupgrade: ${upgrade}\r\n`;
    h += `x-forwarded-for: ${xff === '' ? this.peerIp : `${xff}, ${this.peerIp}`}\r\n`;
    if (!keepProto) h += 'x-forwarded-proto: http\r\n';
    if (!keepHost && r.hostHeader !== '') h += `x-forwarded-host: ${r.hostHeader}\r\n`;
    return `${h}via: 1.${r.minor} fulcrum\r\n\r\n`;
  }

  /** The response head for the client: hop-by-hop fields replaced by our own connection policy. */
  private buildResponseHead(close: boolean, passThrough: boolean, extra = ''): string {
    const r = this.res;
    let h = `HTTP/1.1 ${r.status} ${r.reason}\r\n`;
    if (r.count > 0) {
      if (passThrough) {
        // Interim and 101 responses keep every field, Connection and Upgrade included.
        h += rawLines(r, 0, r.count);
      } else {
        const tokens = r.connectionTokens;
        let run = -1;
        for (let i = 0; i < r.count; i++) {
          const name = r.names[i]!;
          if (!(isHopByHop(name) || tokens?.includes(name))) {
            if (run < 0) run = i;
          } else if (run >= 0) {
            h += rawLines(r, run, i);
            run = -1;
          }
        }
        if (run >= 0) h += rawLines(r, run, r.count);
      }
    }
    if (!passThrough) {
      h += extra;
      if (this.resFraming === Framing.Chunked && !this.resStrip) h += 'transfer-encoding: chunked\r\n';
      if (close) h += 'connection: close\r\n';
      else if (this.req.minor === 0) h += 'connection: keep-alive\r\n';
    }
    return `${h}\r\n`;
  }

  /** The server's Set-Cookie values (sticky sessions in learn mode read them). */
  private setCookies(): string[] {
    const r = this.res;
    const out: string[] = [];
    for (let i = 0; i < r.count; i++) if (r.names[i] === 'set-cookie') out.push(r.values[i]!);
    return out;
  }

  /** Tells the traffic observer about the exchange that just ended. */
  private report(status: number): void {
    const observer = this.ctx.observer;
    if (observer === null) return;
    const r = this.req;
    const server = this.tried.length > 0 ? this.tried[this.tried.length - 1]!.id : null;
    const now = Date.now();
    observer.onExchange({
      listener: this.ctx.name,
      protocol: 'http',
      pool: this.pool?.name ?? '',
      server,
      clientIp: this.pickCtx.clientIp,
      method: r.method,
      path: r.path,
      status,
      bytesOut: this.reportStart >= 0 ? this.socket.bytesWritten - this.reportStart : 0,
      durationMs: this.reportStart >= 0 ? performance.now() - this.reportAt : now - this.startedAt,
      retries: Math.max(0, this.tried.length - 1),
      at: now,
    });
  }

  /** The client address from X-Forwarded-For, walking back over trusted proxies. */
  private forwardedClientIp(): string {
    const r = this.req;
    let xff = '';
    for (let i = 0; i < r.count; i++) {
      if (r.names[i] === 'x-forwarded-for') xff = xff === '' ? r.values[i]! : `${xff},${r.values[i]}`;
    }
    if (xff === '') return this.peerIp;
    const hops = xff.split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const ip = hops[i]!.trim();
      if (i === 0 || !this.ctx.trusted!.has(ip)) return ip;
    }
    return this.peerIp;
  }
}

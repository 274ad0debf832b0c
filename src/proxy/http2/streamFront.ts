/**
 * The HTTP/2 front of one stream: it drives one Exchange with the servers (pooled HTTP/1.1
 * connections) through the same router, selection, retries and observer as the HTTP/1.1 front.
 * The request body's DATA frames go to the server as they come (chunked when the client gave no
 * length); the response head becomes a HEADERS frame without hop-by-hop fields, its body DATA
 * frames, with the stream's flow control as backpressure both ways.
 */
import { constants, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { ExchangeRecord } from '../../core/observer.js';
import type { SelectContext } from '../../core/selection.js';
import { errorBody, RETRY_AFTER_S } from '../errorResponse.js';
import { Exchange, type ExchangeFront } from '../exchange.js';
import { cookieHeader, type ForwardedFor, loggedRequestId } from '../headerRules.js';
import type { ListenerContext } from '../http/clientConnection.js';
import { Framing, headerValue, isHopByHop, type RequestHead, type ResponseHead } from '../http/headParser.js';

const CRLF = Buffer.from('\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
/** How often a streaming request body's rate is checked against `timeouts.bodyMinRate`. */
export const BODY_CHECK_MS = 1000;

/** What a stream front tells the connection that carries it. */
export interface StreamOwner {
  /** The stream is over (closed by either side): it leaves the connection's list. */
  streamClosed(front: StreamFront): void;
}

export class StreamFront implements ExchangeFront {
  deadline = Number.POSITIVE_INFINITY;
  /** When the request body's rate is checked next (`timeouts.bodyMinRate`); Infinity: never. */
  bodyCheckAt = Number.POSITIVE_INFINITY;
  private readonly stream: ServerHttp2Stream;
  private readonly ctx: ListenerContext;
  private readonly owner: StreamOwner;
  private readonly req: RequestHead;
  private readonly exchange: Exchange;
  private readonly selectCtx: SelectContext;
  /** The body goes to the server chunked: each DATA frame is framed as one chunk. */
  private chunked = false;
  private status = 0;
  private bytesOut = 0;
  /** Request body bytes so far (for `limits.maxBodySize`). */
  private bodyBytes = 0;
  private readonly startedAt = performance.now();
  /** When the stream began (ms since epoch), for the body rate. */
  private readonly bodySince = Date.now();
  /** The whole request body has come (or none was to come). */
  private bodyEnded = false;

  constructor(
    stream: ServerHttp2Stream,
    req: RequestHead,
    from: ForwardedFor,
    clientIp: string,
    ctx: ListenerContext,
    owner: StreamOwner,
  ) {
    this.stream = stream;
    this.req = req;
    this.ctx = ctx;
    this.owner = owner;
    this.exchange = new Exchange(this, ctx);
    // The exchange hands over body data only: HTTP/2 frames it.
    this.exchange.decodeChunked = true;
    this.selectCtx = { clientIp, hashKey: undefined };
    stream.on('error', () => {}); // 'close' follows; resets by clients are routine
    stream.on('close', () => this.onClose());
    stream.on('drain', () => this.exchange.resumeResponse());
    const pool = ctx.router.select(req);
    const bodyDone = req.framing === Framing.None;
    this.chunked = req.framing === Framing.Chunked;
    this.bodyEnded = bodyDone;
    if (!bodyDone) {
      stream.on('data', (chunk: Buffer) => this.onData(chunk));
      stream.on('end', () => this.onEnd());
      if (ctx.protection?.bodyMinRate !== undefined) this.bodyCheckAt = this.bodySince + BODY_CHECK_MS;
    }
    const cookies = pool.affinity === null ? null : cookieHeader(req);
    this.exchange.start(pool, req, from, this.selectCtx, cookies, null, bodyDone);
  }

  /** Called by the connection's sweep when `deadline` has passed. */
  onTimeout(): void {
    this.deadline = Number.POSITIVE_INFINITY;
    if (this.exchange.busy) this.exchange.onTimeout();
  }

  /**
   * ExchangeFront: never. nghttp2 reads DATA from where it lies when it sends it, which is
   * always later: the stream is written copies (`send`), so a server connection's read buffer
   * is read into again at once rather than replaced on every read.
   */
  holdsLent(): boolean {
    return false;
  }

  private get gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  // ---- the client's body ----

  private onData(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.bodyBytes += chunk.length;
    const max = this.ctx.protection?.maxBodySize;
    if (max !== undefined && this.bodyBytes > max) return this.bodyTooLarge();
    const out = this.chunked
      ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'), chunk, CRLF])
      : chunk;
    if (!this.exchange.writeBody(out)) this.stream.pause();
  }

  /** `limits.maxBodySize` passed while the body streams: 413, or the stream cut if answered. */
  private bodyTooLarge(): void {
    this.ctx.protection?.bodyTooLarge();
    this.bodyEnded = true;
    this.bodyCheckAt = Number.POSITIVE_INFINITY;
    const responded = this.exchange.responded;
    if (this.exchange.busy) this.exchange.cancel();
    this.deadline = Number.POSITIVE_INFINITY;
    this.stream.removeAllListeners('data');
    if (responded || this.gone) {
      if (!this.gone) this.stream.close(constants.NGHTTP2_CANCEL);
      return;
    }
    respondError(this.stream, 413, false);
    this.report(413);
  }

  /**
   * Called by the connection's sweep when `bodyCheckAt` has passed: a body slower than
   * `timeouts.bodyMinRate` is cut on this stream alone (the connection's other streams go on):
   * 408, or a reset if the response began (as Envoy does for its stream timeouts); after the 408,
   * RST_STREAM NO_ERROR (RFC 9113 8.1: a complete answer, the rest of the body not wanted).
   */
  checkBodyRate(now: number): void {
    if (this.bodyEnded || this.gone) {
      this.bodyCheckAt = Number.POSITIVE_INFINITY;
      return;
    }
    this.bodyCheckAt = now + BODY_CHECK_MS;
    if (this.ctx.protection?.bodyTooSlow(this.bodyBytes, now - this.bodySince) !== true) return;
    this.bodyCheckAt = Number.POSITIVE_INFINITY;
    this.deadline = Number.POSITIVE_INFINITY;
    this.bodyEnded = true;
    const responded = this.exchange.responded;
    if (this.exchange.busy) this.exchange.cancel();
    this.stream.removeAllListeners('data');
    this.ctx.note(
      'bad body: slow',
      `${this.ctx.name}: client ${this.selectCtx.clientIp}: request body slower than timeouts.bodyMinRate`,
      false,
    );
    if (responded) {
      this.stream.close(constants.NGHTTP2_CANCEL);
      return;
    }
    respondError(this.stream, 408, this.req.method === 'HEAD');
    // Sent once the answer is flushed: the client stops sending the body.
    this.stream.close(constants.NGHTTP2_NO_ERROR);
    this.report(408);
  }

  private onEnd(): void {
    // A body cut (too slow) is not ended towards the server: its exchange was cancelled.
    if (this.bodyEnded) return;
    this.bodyEnded = true;
    this.bodyCheckAt = Number.POSITIVE_INFINITY;
    if (this.bodyBytes > (this.ctx.protection?.maxBodySize ?? Number.POSITIVE_INFINITY)) return;
    if (this.chunked) this.exchange.writeBody(LAST_CHUNK);
    if (this.exchange.busy) this.exchange.endBody();
  }

  private onClose(): void {
    this.deadline = Number.POSITIVE_INFINITY;
    // The client reset the stream (or the connection went): the server's side is let go.
    if (this.exchange.busy) this.exchange.cancel();
    this.owner.streamClosed(this);
  }

  // ---- what the exchange tells ----

  onBodyDrain(): void {
    if (!this.gone) this.stream.resume();
  }

  onInterim(res: ResponseHead): void {
    // 100 Continue and 103 Early Hints go to the client as HEADERS frames before the final
    // response's (RFC 9113 8.1), without hop-by-hop fields.
    if (this.gone || this.stream.headersSent) return;
    try {
      this.stream.additionalHeaders(responseHeaders(res, '', ''));
    } catch {
      // A field HTTP/2 cannot carry: the interim answer is only advice, it is left out.
    }
  }

  onResponseHead(
    res: ResponseHead,
    _framing: Framing,
    extra: string,
    buf: Buffer,
    from: number,
    to: number,
    complete: boolean,
  ): boolean {
    this.status = res.status;
    if (this.gone) return true;
    const headers = responseHeaders(res, extra, this.ctx.hsts);
    const empty = complete && to === from;
    try {
      this.stream.respond(headers, { endStream: empty });
    } catch {
      // A field HTTP/2 cannot carry: the stream is cut rather than a half answer sent.
      this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      return true;
    }
    if (to === from) return true;
    return this.send(buf.subarray(from, to));
  }

  onResponseBody(chunk: Buffer): boolean {
    if (this.gone) return true;
    return this.send(chunk);
  }

  /** A copy of lent response bytes to the stream (see `holdsLent`). */
  private send(lent: Buffer): boolean {
    this.bytesOut += lent.length;
    return this.stream.write(Buffer.from(lent));
  }

  onResponseEnd(): void {
    this.deadline = Number.POSITIVE_INFINITY;
    if (!this.gone && !this.stream.writableEnded) this.stream.end();
    this.report(this.status);
  }

  onUpgrade(_res: ResponseHead, _rest: Buffer): void {
    // Never asked for: an HTTP/2 request carries no Upgrade.
    this.exchange.cancel();
    if (!this.gone) this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  }

  onUpstreamEnd(): void {
    this.deadline = Number.POSITIVE_INFINITY;
    if (!this.gone && !this.stream.writableEnded) this.stream.end();
    this.report(this.status);
  }

  onFailure(status: number, _why: string): void {
    // The exchange logged it, naming pool and server.
    this.deadline = Number.POSITIVE_INFINITY;
    respondError(this.stream, status, this.req.method === 'HEAD');
    this.report(status);
  }

  onAbort(_why: string): void {
    this.deadline = Number.POSITIVE_INFINITY;
    if (!this.gone) this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  }

  /** Tells the traffic observer about the exchange that just ended. */
  private report(status: number): void {
    // Detection judges the servers' answers, as for HTTP/1.1.
    this.ctx.protection?.onAnswer(this.selectCtx.clientIp, status, Date.now());
    const observer = this.ctx.observer;
    if (observer === null) return;
    const tried = this.exchange.selection.tried;
    const record = streamRecord(this.ctx.name, this.req, this.selectCtx.clientIp, status);
    record.pool = this.exchange.pool?.name ?? '';
    record.server = tried.length > 0 ? tried[tried.length - 1]!.id : null;
    record.bytesOut = this.bytesOut;
    record.durationMs = performance.now() - this.startedAt;
    record.retries = Math.max(0, tried.length - 1);
    observer.onExchange(record);
  }
}

/**
 * The access-log record of one stream, with the fields an HTTP/1.1 request has (query, host,
 * user agent, request id); a stream answered by the front itself (refused, malformed,
 * redirected) goes out as it is: no pool, no server, nothing sent to a server.
 */
export function streamRecord(
  listener: string,
  req: RequestHead,
  clientIp: string,
  status: number,
  refusedBy?: string,
): ExchangeRecord {
  const q = req.target.indexOf('?');
  return {
    listener,
    protocol: 'http',
    pool: '',
    server: null,
    clientIp,
    method: req.method,
    path: req.path,
    query: q < 0 ? '' : req.target.slice(q + 1),
    host: req.hostHeader,
    userAgent: headerValue(req, 'user-agent') ?? '',
    requestId: loggedRequestId(req),
    status,
    bytesOut: 0,
    durationMs: 0,
    retries: 0,
    at: Date.now(),
    refusedBy,
  };
}

/** The response's end-to-end fields as HTTP/2 headers, with our own lines (`extra`) added. */
function responseHeaders(res: ResponseHead, extra: string, hsts: string): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { ':status': res.status };
  const tokens = res.connectionTokens;
  for (let i = 0; i < res.count; i++) {
    const name = res.names[i]!;
    if (isHopByHop(name) || tokens?.includes(name)) continue;
    add(headers, name, res.values[i]!);
  }
  if (extra !== '') {
    for (const line of extra.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) add(headers, line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  if (hsts !== '') headers['strict-transport-security'] = hsts;
  return headers;
}

function add(headers: OutgoingHttpHeaders, name: string, value: string): void {
  const had = headers[name];
  if (had === undefined) headers[name] = value;
  else if (Array.isArray(had)) had.push(value);
  else headers[name] = [String(had), value];
}

/** A complete error answer on a stream (nothing of a response sent yet). */
export function respondError(
  stream: ServerHttp2Stream,
  status: number,
  head: boolean,
  more?: OutgoingHttpHeaders,
): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  const body = head ? '' : errorBody(status);
  const headers: OutgoingHttpHeaders = {
    ':status': status,
    'content-type': 'text/plain',
    'content-length': body.length,
    ...more,
  };
  if (status === 503) headers['retry-after'] = String(RETRY_AFTER_S);
  stream.respond(headers, { endStream: body === '' });
  if (body !== '') stream.end(body);
}

/**
 * One HTTP/2 client connection (over TLS by ALPN, or h2c with prior knowledge): its streams,
 * each a StreamFront with its own Exchange; the idle timeout; and the defences HTTP/2 needs
 * beyond nghttp2's own limits: a client that resets streams faster than a bound (the rapid
 * reset attack, CVE-2023-44487) is sent GOAWAY and cut.
 */
import {
  constants,
  createServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import { unmapIPv4 } from '../../core/cidr.js';
import type { ListenerProtection } from '../../protection/listenerProtection.js';
import type { FrontConnection } from '../frontConnection.js';
import { clientIpOf, type ForwardedFor } from '../headerRules.js';
import type { ListenerContext } from '../http/clientConnection.js';
import { newRequestHead, type RequestHead } from '../http/headParser.js';
import { httpsLocation } from '../tls/httpsRedirect.js';
import { h2RequestHead } from './requestHead.js';
import {
  StreamFront as Front,
  respondError,
  type StreamFront,
  type StreamOwner,
  streamRecord,
} from './streamFront.js';

/** Streams a client may reset (before their response ended) per window before it is cut. */
export const RESET_LIMIT = 200;
export const RESET_WINDOW_MS = 10_000;
/** A client told GOAWAY for abuse has this long to read it before its connection is cut. */
const CUT_AFTER_MS = 200;
/** Header fields per request, as for HTTP/1.1 heads. */
const MAX_HEADERS = 100;

/** What an HTTP/2 front needs beyond the HTTP/1.1 listener context. */
export interface H2Settings {
  maxConcurrentStreams: number;
  maxHeaderSize: number;
}

/**
 * A session factory for one listener: connections whose first bytes (or ALPN) say HTTP/2 are
 * handed to it; it never listens itself.
 */
export function createH2Factory(
  settings: H2Settings,
  onSession: (s: ServerHttp2Session) => void,
): Http2Server {
  const server = createServer({
    settings: {
      maxConcurrentStreams: settings.maxConcurrentStreams,
      maxHeaderListSize: settings.maxHeaderSize,
      enablePush: false,
    },
    // Beyond these, nghttp2 itself ends the session: header pairs (CONTINUATION floods are
    // also bounded by nghttp2's own limit on CONTINUATION frames), frames it had to refuse,
    // and streams refused over maxConcurrentStreams.
    maxHeaderListPairs: MAX_HEADERS + 8,
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
  });
  server.on('session', onSession);
  return server;
}

export class H2Connection implements FrontConnection, StreamOwner {
  /** Checked on every sweep: the streams' own deadlines and the idle limit are looked at then. */
  deadline = 0;
  private readonly session: ServerHttp2Session;
  private readonly socket: Socket;
  private readonly ctx: ListenerContext;
  private readonly from: ForwardedFor;
  private readonly streams = new Set<StreamFront>();
  private idleSince = Date.now();
  private resets = 0;
  private resetWindow = 0;
  /** Cut for abuse: the connection is going. */
  private cut = false;

  /** The earliest of the streams' body rate checks (`timeouts.bodyMinRate`); Infinity: none. */
  bodyCheckAt = Number.POSITIVE_INFINITY;

  /**
   * `admittedBy`: the protection that admitted the connection (connections per client), told
   * when it closes.
   */
  constructor(
    session: ServerHttp2Session,
    socket: Socket,
    ctx: ListenerContext,
    admittedBy: ListenerProtection | null,
  ) {
    this.session = session;
    this.socket = socket;
    this.ctx = ctx;
    const peerIp = unmapIPv4(socket.remoteAddress ?? '');
    this.from = {
      peerIp,
      trustedPeer: ctx.trusted?.has(peerIp) ?? false,
      // The socket's own: a reload may turn the listener's TLS on or off during a handshake.
      proto: (socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http',
    };
    session.on('error', () => {}); // 'close' follows
    session.on('frameError', () => {});
    session.on('stream', (stream: ServerHttp2Stream, _h: IncomingHttpHeaders, _f: number, raw: string[]) =>
      this.onStream(stream, raw),
    );
    session.on('close', () => {
      this.ctx.connections.delete(this);
      admittedBy?.release(this.from.peerIp);
    });
    // HTTP/2 has no half-close: a client that ends its side sends nothing more, no
    // WINDOW_UPDATE either, so a stream waiting on flow control would wait forever and the
    // session never close (measured: h2load stopping with streams in flight left every session
    // listed, and a shutdown waited its whole timeout). What can finish does, then it is cut.
    socket.once('end', () => {
      if (!session.closed) session.close();
      // The socket too: destroying the session alone can leave a TLS socket open, and the
      // session's 'close' waits for the socket's.
      setTimeout(() => {
        socket.destroy();
        if (!session.destroyed) session.destroy();
      }, CUT_AFTER_MS).unref();
    });
    socket.once('close', () => {
      if (!session.destroyed) session.destroy();
    });
    ctx.connections.add(this);
  }

  get idle(): boolean {
    return this.streams.size === 0;
  }

  private onStream(stream: ServerHttp2Stream, raw: string[]): void {
    stream.on('aborted', () => this.onReset());
    if (this.ctx.closing) {
      stream.on('error', () => {});
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const req = newRequestHead();
    const status = h2RequestHead(raw, !stream.endAfterHeaders, req, this.ctx.maxHeaderSize, MAX_HEADERS);
    if (status !== 0) {
      stream.on('error', () => {});
      this.ctx.note(
        `reject ${status}`,
        `${this.ctx.name}: ${status} for client ${this.from.peerIp}: ${req.error}`,
        false,
      );
      respondError(stream, status, req.method === 'HEAD');
      this.answered(req, this.from.peerIp, status);
      return;
    }
    const clientIp = this.from.trustedPeer
      ? clientIpOf(req, this.from.peerIp, this.ctx.trusted)
      : this.from.peerIp;
    const protection = this.ctx.protection;
    if (protection !== null) {
      // The route decides which rate limit applies (the stream routes again when it starts).
      this.ctx.router.select(req);
      const refused = protection.checkRequest(req, clientIp, Date.now(), this.ctx.router.matched);
      if (refused !== 0) {
        stream.on('error', () => {});
        this.ctx.note(
          `refuse ${refused}`,
          `${this.ctx.name}: ${refused} for client ${clientIp}: ${req.method} ${req.path} refused by protection`,
          false,
        );
        const more = refused === 429 ? headerLines(protection.rateHeaders()) : undefined;
        respondError(stream, refused, req.method === 'HEAD', more);
        this.answered(req, clientIp, refused, protection.lastReason ?? undefined);
        return;
      }
    }
    const port = this.ctx.redirectPort?.();
    if (port !== undefined && port !== null) {
      stream.on('error', () => {});
      const location = httpsLocation(req.host, port, req.target);
      respondError(stream, 308, true, { location });
      this.answered(req, clientIp, 308);
      return;
    }
    const front = new Front(stream, req, this.from, clientIp, this.ctx, this);
    this.streams.add(front);
    if (front.bodyCheckAt < this.bodyCheckAt) this.bodyCheckAt = front.bodyCheckAt;
  }

  /** A stream reset by the client before its response ended: counted against the bound. */
  private onReset(): void {
    const now = Date.now();
    if (now - this.resetWindow > RESET_WINDOW_MS) {
      this.resetWindow = now;
      this.resets = 0;
    }
    if (++this.resets <= RESET_LIMIT) return;
    if (this.session.destroyed || this.cut) return;
    this.cut = true;
    this.ctx.log.warn(
      `${this.ctx.name}: client ${this.from.peerIp} reset more than ${RESET_LIMIT} streams in ${RESET_WINDOW_MS / 1000}s, disconnected`,
    );
    // GOAWAY with this code, flushed, then the connection is cut (destroying the session alone
    // leaves a TLS socket open). Streams in flight are cancelled by their 'close'.
    this.session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    const socket = this.socket;
    socket.end();
    setTimeout(() => {
      socket.destroy();
      this.session.destroy();
    }, CUT_AFTER_MS).unref();
  }

  /** A stream the front answered itself goes to the access log and metrics like any other. */
  private answered(req: RequestHead, clientIp: string, status: number, refusedBy?: string): void {
    this.ctx.observer?.onExchange(streamRecord(this.ctx.name, req, clientIp, status, refusedBy));
  }

  streamClosed(front: StreamFront): void {
    this.streams.delete(front);
    if (this.streams.size === 0) this.idleSince = Date.now();
  }

  onTimeout(): void {
    const now = Date.now();
    for (const s of this.streams) if (s.deadline <= now) s.onTimeout();
    if (this.streams.size === 0 && now - this.idleSince > this.ctx.timeouts.idle) this.session.close();
  }

  shutdown(_graceMs: number): void {
    // GOAWAY: streams in flight finish, no new ones.
    if (!this.session.closed) this.session.close();
  }

  destroy(): void {
    this.session.destroy();
  }

  /** Each stream whose check is due checks its body's rate; the next check is the earliest left. */
  checkBodyRate(now: number): void {
    let next = Number.POSITIVE_INFINITY;
    for (const s of this.streams) {
      if (s.bodyCheckAt <= now) s.checkBodyRate(now);
      if (s.bodyCheckAt < next) next = s.bodyCheckAt;
    }
    this.bodyCheckAt = next;
  }
}

/** Header lines ("name: value\r\n" …) as HTTP/2 headers. */
function headerLines(lines: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const line of lines.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) out[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return out;
}

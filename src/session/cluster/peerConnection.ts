/**
 * One authenticated TCP connection between two cluster nodes, either side may have dialed.
 *
 * Handshake: both sides send `hello` (node id, boot id, a fresh nonce, the replication mode),
 * then `auth`, an HMAC-SHA256 under the shared secret of the other side's nonce and their own
 * identity. Each side checks the other's MAC in constant time; the secret never crosses the wire
 * and a MAC cannot be replayed on another connection. Until both checks pass, any other frame,
 * a wrong MAC, a mode mismatch or silence for `handshakeTimeoutMs` closes the connection.
 *
 * After that: fire-and-forget frames, and requests (`re` in the answer matches `seq`) bounded in
 * time. Bytes in and out are counted for the cluster's statistics.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  type FrameHeader,
  FrameType,
  type FrameTypeCode,
  frameTypeName,
} from './frames.js';

export interface Identity {
  node: string;
  boot: string;
  mode: string;
}

export interface ConnectionCounters {
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
  framesReceived: number;
}

interface PendingRequest {
  resolve: (frame: Frame) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const PROTOCOL = 'fulcrum-cluster/1';

export function handshakeMac(secret: string, nonce: string, node: string, boot: string): Buffer {
  return createHmac('sha256', secret).update(`${PROTOCOL}\n${nonce}\n${node}\n${boot}`).digest();
}

export class PeerConnection extends EventEmitter {
  /** The other node's identity, once its hello has arrived. */
  peer: Identity | undefined;
  authenticated = false;
  closed = false;
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  readonly #nonce = randomBytes(16).toString('hex');
  readonly #pending = new Map<number, PendingRequest>();
  #seq = 0;
  #sentAuth = false;
  #handshakeTimer: NodeJS.Timeout | undefined;

  constructor(
    socket: Socket,
    readonly direction: 'out' | 'in',
    readonly self: Identity,
    readonly secret: string,
    readonly counters: ConnectionCounters,
    handshakeTimeoutMs: number,
    maxFrameBytes?: number,
  ) {
    super();
    this.#socket = socket;
    this.#decoder = new FrameDecoder(maxFrameBytes);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.close(err));
    socket.on('close', () => this.close());
    this.#handshakeTimer = setTimeout(
      () => this.close(new Error(`no handshake within ${handshakeTimeoutMs} ms`)),
      handshakeTimeoutMs,
    );
    this.#handshakeTimer.unref();
    this.#write(FrameType.hello, { node: self.node, boot: self.boot, nonce: this.#nonce, mode: self.mode });
  }

  get remoteAddress(): string {
    return `${this.#socket.remoteAddress ?? '?'}:${this.#socket.remotePort ?? '?'}`;
  }

  /** Sends a frame; false when the connection is closed. */
  send(type: FrameTypeCode, header: FrameHeader, body?: string | Buffer): boolean {
    if (this.closed || !this.authenticated) return false;
    this.#write(type, header, body);
    return true;
  }

  /** Sends a frame that expects an answer carrying `re: seq`; rejects on timeout or close. */
  request(
    type: FrameTypeCode,
    header: FrameHeader,
    timeoutMs: number,
    body?: string | Buffer,
  ): Promise<Frame> {
    if (this.closed || !this.authenticated) {
      return Promise.reject(new Error(`connection to ${this.peer?.node ?? this.remoteAddress} is closed`));
    }
    const seq = ++this.#seq;
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new Error(`${frameTypeName(type)} to ${this.peer?.node}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(seq, { resolve, reject, timer });
      this.#write(type, { ...header, seq }, body);
    });
  }

  /** Answers a request frame. */
  reply(request: Frame, type: FrameTypeCode, header: FrameHeader, body?: string | Buffer): void {
    this.send(type, { ...header, re: request.header.seq }, body);
  }

  /** Says goodbye (a `leave` frame) and ends the connection once it is written; resolves when closed. */
  leave(): Promise<void> {
    if (this.closed) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.once('close', () => resolve()));
    if (this.authenticated) {
      this.#write(FrameType.leave, {});
      this.#socket.end();
    } else {
      this.close();
    }
    return closed;
  }

  close(cause?: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.#handshakeTimer);
    this.#socket.destroy();
    const err = new Error(`connection to ${this.peer?.node ?? this.remoteAddress} closed`, { cause });
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(err);
    }
    this.#pending.clear();
    this.emit('close', cause);
  }

  #write(type: FrameTypeCode, header: FrameHeader, body?: string | Buffer): void {
    const frame = encodeFrame(type, header, body);
    this.counters.bytesSent += frame.length;
    this.counters.framesSent++;
    this.#socket.write(frame);
  }

  #onData(chunk: Buffer): void {
    this.counters.bytesReceived += chunk.length;
    let frames: Frame[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (err) {
      if (!this.authenticated) this.emit('refused', err);
      this.emit('malformed', err);
      this.close(err as Error);
      return;
    }
    for (const frame of frames) {
      if (this.closed) return;
      this.counters.framesReceived++;
      if (!this.authenticated) this.#handshake(frame);
      else if (typeof frame.header.re === 'number') this.#answer(frame);
      else this.emit('frame', frame);
    }
  }

  #answer(frame: Frame): void {
    const pending = this.#pending.get(frame.header.re as number);
    if (!pending) return; // answered after its timeout
    this.#pending.delete(frame.header.re as number);
    clearTimeout(pending.timer);
    pending.resolve(frame);
  }

  #handshake(frame: Frame): void {
    const h = frame.header;
    if (frame.type === FrameType.hello && !this.peer) {
      if (typeof h.node !== 'string' || typeof h.boot !== 'string' || typeof h.nonce !== 'string') {
        this.#refuse(new Error(`hello from ${this.remoteAddress} without node, boot and nonce`));
        return;
      }
      if (h.mode !== this.self.mode) {
        this.#refuse(
          new Error(`peer ${h.node}: it replicates ${String(h.mode)}, this node ${this.self.mode}`),
        );
        return;
      }
      if (h.node === this.self.node && h.boot === this.self.boot) {
        this.close(new Error('connected to itself'));
        return;
      }
      this.peer = { node: h.node, boot: h.boot, mode: h.mode };
      this.#sentAuth = true;
      this.#write(FrameType.auth, {
        mac: handshakeMac(this.secret, h.nonce, this.self.node, this.self.boot).toString('base64'),
      });
      return;
    }
    if (frame.type === FrameType.auth && this.peer && this.#sentAuth) {
      const expected = handshakeMac(this.secret, this.#nonce, this.peer.node, this.peer.boot);
      const given = Buffer.from(typeof h.mac === 'string' ? h.mac : '', 'base64');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        const err = new Error(
          `peer ${this.peer.node} (${this.remoteAddress}) failed authentication: wrong cluster secret`,
        );
        this.#refuse(err);
        return;
      }
      this.authenticated = true;
      clearTimeout(this.#handshakeTimer);
      this.emit('authenticated');
      return;
    }
    this.#refuse(
      new Error(`${frameTypeName(frame.type)} frame from ${this.remoteAddress} before authentication`),
    );
  }

  #refuse(err: Error): void {
    this.emit('refused', err);
    this.close(err);
  }
}

/**
 * TLS termination for an http listener: a tls.Server (never listening itself: the listener's
 * plain socket hands it connections) whose certificate is picked by SNI from a swappable
 * CertificateStore, ALPN (h2, http/1.1) picked per handshake, optional client certificates (mTLS)
 * and session tickets whose keys outlive certificate reloads. It hands each connection, once the
 * handshake is done, to the listener; the ALPN result says which front takes it.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { createServer, type Server, type TLSSocket, type TlsOptions } from 'node:tls';
import { CertificateError } from '../../config/certificates.js';
import type { TlsConfig } from '../../config/types.js';
import type { Logger } from '../../core/log.js';
import { CertificateStore } from './certificateStore.js';

/** Node ≥ 20.4 picks ALPN through a callback: the protocols offered can then change on reload. */
const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
export const DYNAMIC_ALPN = major > 20 || (major === 20 && minor >= 4);

/**
 * The protocol to agree on: ours in our order of preference (as OpenSSL does with a list), or
 * none (the handshake then fails with no_application_protocol, as with a fixed list).
 */
export function pickAlpn(ours: readonly string[], theirs: readonly string[]): string | undefined {
  return ours.find((p) => theirs.includes(p));
}

export class TlsTerminator {
  readonly server: Server;
  private store: CertificateStore;
  /** Protocols offered by ALPN to the next handshakes (`tls.alpn`, replaced by a reload). */
  private alpn: readonly string[];
  /** Session ticket keys: one set for every context and every reload, so tickets stay valid. */
  private readonly ticketKeys = randomBytes(48);

  /** Throws a CertificateError when a file cannot be used (the config loader checked them). */
  constructor(config: TlsConfig, handshakeMs: number, onSecure: (socket: TLSSocket) => void) {
    this.store = CertificateStore.load(config, this.ticketKeys);
    this.alpn = config.alpn;
    const mtls = config.clientCa !== undefined;
    // Read at each handshake, so that a reload changes what new connections are offered.
    const alpn: TlsOptions = DYNAMIC_ALPN
      ? { ALPNCallback: ({ protocols }) => pickAlpn(this.alpn, protocols) }
      : { ALPNProtocols: config.alpn };
    this.server = createServer(
      {
        ...this.store.defaultOptions,
        SNICallback: (name, cb) => cb(null, this.store.lookup(name)),
        ...alpn,
        requestCert: mtls,
        rejectUnauthorized: mtls,
        handshakeTimeout: handshakeMs,
        noDelay: true,
      },
      (socket) => {
        // Half-open from now on: a client may send its request, shut down its side, and still
        // expect the whole response (see take()).
        socket.allowHalfOpen = true;
        onSecure(socket);
      },
    );
    // Failed handshakes (no client certificate, timeouts, scanners) are routine: not logged.
    this.server.on('tlsClientError', (_err, socket) => socket.destroy());
  }

  /**
   * Starts the handshake on a connection accepted by the listener's plain socket. A TLS socket
   * takes its half-open setting from the connection it wraps: not half-open during the
   * handshake, so a client that closes before finishing it (a port probe, a scanner) is closed
   * at once rather than kept until the handshake timeout.
   */
  take(raw: Socket): void {
    raw.allowHalfOpen = false;
    this.server.emit('connection', raw);
  }

  /**
   * A reload: the files are read again and, when anything changed, the new contexts serve the
   * next handshakes, as do `alpn` and `clientCa`; connections open and handshakes in flight keep
   * theirs. A file that cannot be used keeps the running certificates (logged).
   */
  update(config: TlsConfig, name: string, log: Logger): void {
    if (DYNAMIC_ALPN) this.alpn = config.alpn;
    let next: CertificateStore;
    try {
      next = CertificateStore.load(config, this.ticketKeys);
    } catch (error) {
      if (!(error instanceof CertificateError) && !(error instanceof Error)) throw error;
      log.error(`listener ${name}: certificates not reloaded, keeping the running ones: ${error.message}`);
      return;
    }
    const mtls = config.clientCa !== undefined;
    // Read by the server for each new connection.
    const fields = this.server as unknown as { requestCert: boolean; rejectUnauthorized: boolean };
    fields.requestCert = mtls;
    fields.rejectUnauthorized = mtls;
    if (next.fingerprint === this.store.fingerprint) return;
    this.store = next;
    this.server.setSecureContext(next.defaultOptions);
    log.info(`listener ${name}: certificates reloaded`);
  }
}

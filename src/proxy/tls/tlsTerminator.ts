/**
 * TLS termination for an http listener: a tls.Server whose certificate is picked by SNI from a
 * swappable CertificateStore, ALPN (h2, http/1.1), optional client certificates (mTLS) and
 * session tickets whose keys outlive certificate reloads. It hands each connection, once the
 * handshake is done, to the listener; the ALPN result says which front takes it.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { CertificateError } from '../../config/certificates.js';
import type { TlsConfig } from '../../config/types.js';
import type { Logger } from '../../core/log.js';
import { CertificateStore } from './certificateStore.js';

export class TlsTerminator {
  readonly server: Server;
  private store: CertificateStore;
  /** Session ticket keys: one set for every context and every reload, so tickets stay valid. */
  private readonly ticketKeys = randomBytes(48);

  /** Throws a CertificateError when a file cannot be used (the config loader checked them). */
  constructor(config: TlsConfig, handshakeMs: number, onSecure: (socket: TLSSocket) => void) {
    this.store = CertificateStore.load(config, this.ticketKeys);
    const mtls = config.clientCa !== undefined;
    this.server = createServer(
      {
        ...this.store.defaultOptions,
        SNICallback: (name, cb) => cb(null, this.store.lookup(name)),
        ALPNProtocols: config.alpn,
        requestCert: mtls,
        rejectUnauthorized: mtls,
        handshakeTimeout: handshakeMs,
        allowHalfOpen: true,
        noDelay: true,
      },
      onSecure,
    );
    // Failed handshakes (no client certificate, timeouts, scanners) are routine: not logged.
    this.server.on('tlsClientError', (_err, socket) => socket.destroy());
  }

  /**
   * A reload: the files are read again and, when anything changed, the new contexts serve the
   * next handshakes; connections open and handshakes in flight keep theirs. A file that
   * cannot be used keeps the running certificates (logged).
   */
  update(config: TlsConfig, name: string, log: Logger): void {
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

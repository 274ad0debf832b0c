/**
 * The certificates of a TLS listener as secure contexts, looked up by SNI: exact names first,
 * then one-label wildcards ("*.example.com"), else the first certificate. A reload builds a new
 * store and swaps it in whole: a handshake in flight has already been given its context, so it
 * finishes with the old one while new handshakes get the new ones.
 */
import { createHash } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { readCaBundle, readCertificatePair } from '../../config/certificates.js';
import type { TlsConfig } from '../../config/types.js';

export class CertificateStore {
  private readonly exact = new Map<string, SecureContext>();
  /** "example.com" → the context of "*.example.com". */
  private readonly wildcard = new Map<string, SecureContext>();
  /** The first certificate: clients without SNI, or with a name no certificate has. */
  readonly fallback: SecureContext;
  /** The options of the first certificate's context (for `server.setSecureContext`). */
  readonly defaultOptions: SecureContextOptions;
  /** A digest of every file and setting: a reload with nothing changed keeps the store. */
  readonly fingerprint: string;

  private constructor(config: TlsConfig, ticketKeys: Buffer) {
    const hash = createHash('sha256').update(`${config.minVersion}\0`);
    const ca = config.clientCa === undefined ? undefined : readCaBundle(config.clientCa);
    if (ca !== undefined) hash.update(ca);
    let first: SecureContextOptions | undefined;
    let fallback: SecureContext | undefined;
    for (const c of config.certificates) {
      const pair = readCertificatePair(c.cert, c.key);
      hash.update(pair.cert).update(pair.key);
      const options: SecureContextOptions = {
        cert: pair.cert,
        key: pair.key,
        minVersion: config.minVersion,
        ticketKeys,
      };
      if (ca !== undefined) options.ca = ca;
      const context = createSecureContext(options);
      if (first === undefined) {
        first = options;
        fallback = context;
      }
      for (const name of pair.names) {
        // The first certificate naming a host wins, as the config lists them.
        if (name.startsWith('*.')) {
          if (!this.wildcard.has(name.slice(2))) this.wildcard.set(name.slice(2), context);
        } else if (!this.exact.has(name)) this.exact.set(name, context);
      }
    }
    this.fallback = fallback!;
    this.defaultOptions = first!;
    this.fingerprint = hash.digest('hex');
  }

  /**
   * Reads and checks the files of `config`; throws a CertificateError naming the file and the
   * reason. `ticketKeys` are shared by every context so that resumption works whatever name a
   * client asked for, and survives a reload.
   */
  static load(config: TlsConfig, ticketKeys: Buffer): CertificateStore {
    return new CertificateStore(config, ticketKeys);
  }

  /** The context for an SNI name. */
  lookup(servername: string): SecureContext {
    const name = servername.toLowerCase();
    const found = this.exact.get(name);
    if (found !== undefined) return found;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const wild = this.wildcard.get(name.slice(dot + 1));
      if (wild !== undefined) return wild;
    }
    return this.fallback;
  }
}

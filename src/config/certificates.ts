/**
 * Certificate files, checked when a config is loaded (and read again by a TLS listener when it
 * starts or reloads): readable, PEM, the key matching its certificate, the certificate in its
 * validity period. A problem names the key path, the file and the reason, so that a reload with
 * a bad file is refused and the running config kept.
 */
import type { X509Certificate } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import type { PathProblem } from './errors.js';
import {
  checkKeyPair,
  checkValidity,
  PemProblem,
  parseCertificate,
  parsePrivateKey,
  readPemFile,
} from './pem.js';
import type { Config } from './types.js';

/** A certificate and its key as read from their files. */
export interface CertificatePair {
  cert: Buffer;
  key: Buffer;
  /** DNS names of the certificate (subjectAltName, else the subject CN), lowercased; may start with "*.". */
  names: string[];
}

/** A certificate file problem: `which` says whether the cert or the key file is at fault. */
export class CertificateError extends Error {
  constructor(
    readonly which: 'cert' | 'key',
    message: string,
  ) {
    super(message);
  }
}

/** Reads a PEM file; the reason in words when it cannot be read. */
export function readPem(file: string, which: 'cert' | 'key'): Buffer {
  return asCertificateError(which, () => readPemFile(file));
}

/** Reads and checks a certificate and its key; throws CertificateError saying what is wrong. */
export function readCertificatePair(certFile: string, keyFile: string, now = Date.now()): CertificatePair {
  const cert = readPem(certFile, 'cert');
  const key = readPem(keyFile, 'key');
  const x509 = asCertificateError('cert', () => parseCertificate(cert, certFile));
  const privateKey = asCertificateError('key', () => parsePrivateKey(key, keyFile));
  asCertificateError('key', () => checkKeyPair(x509, privateKey, certFile, keyFile));
  // Dates after the pairing: a wrong key is the problem to fix first.
  asCertificateError('cert', () => checkValidity(x509, certFile, now));
  return { cert, key, names: certificateNames(x509) };
}

function asCertificateError<T>(which: 'cert' | 'key', read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof PemProblem) throw new CertificateError(which, error.message);
    throw error;
  }
}

/** The DNS names a certificate answers for: its subjectAltName DNS entries, else its CN. */
export function certificateNames(x509: X509Certificate): string[] {
  const names: string[] = [];
  for (const part of (x509.subjectAltName ?? '').split(',')) {
    const entry = part.trim();
    if (entry.startsWith('DNS:')) names.push(entry.slice(4).toLowerCase());
  }
  if (names.length === 0) {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject);
    if (cn !== null) names.push(cn[1]!.toLowerCase());
  }
  return names;
}

/** Reads and checks a CA bundle (client certificate authorities). */
export function readCaBundle(file: string): Buffer {
  const pem = readPem(file, 'cert');
  asCertificateError('cert', () => parseCertificate(pem, file));
  return pem;
}

/**
 * Resolves the certificate paths of every TLS listener against `baseDir` (the config file's
 * folder) in place, and checks each file. Returns the problems found.
 */
export function checkCertificateFiles(config: Config, baseDir: string): PathProblem[] {
  const problems: PathProblem[] = [];
  config.listeners.forEach((listener, i) => {
    const tls = listener.tls;
    if (tls === undefined) return;
    const at = ['listeners', i, 'tls'];
    // Names claimed by earlier certificates: SNI picks the first certificate holding a name.
    const claimed = new Set<string>();
    tls.certificates.forEach((pair, j) => {
      pair.cert = isAbsolute(pair.cert) ? pair.cert : resolve(baseDir, pair.cert);
      pair.key = isAbsolute(pair.key) ? pair.key : resolve(baseDir, pair.key);
      try {
        const { names } = readCertificatePair(pair.cert, pair.key);
        const unreachable = j > 0 && names.every((n) => claimed.has(n));
        for (const n of names) claimed.add(n);
        if (unreachable) {
          problems.push({
            path: [...at, 'certificates', j, 'cert'],
            message:
              names.length === 0
                ? `${pair.cert} names no host (no DNS subjectAltName nor CN): no client can reach it (only the first certificate serves clients without a matching name)`
                : `${pair.cert} can never be chosen: every name it holds (${names.join(', ')}) is served by an earlier certificate`,
          });
        }
      } catch (error) {
        if (!(error instanceof CertificateError)) throw error;
        problems.push({ path: [...at, 'certificates', j, error.which], message: error.message });
      }
    });
    if (tls.clientCa !== undefined) {
      tls.clientCa = isAbsolute(tls.clientCa) ? tls.clientCa : resolve(baseDir, tls.clientCa);
      try {
        readCaBundle(tls.clientCa);
      } catch (error) {
        if (!(error instanceof CertificateError)) throw error;
        problems.push({ path: [...at, 'clientCa'], message: error.message });
      }
    }
  });
  return problems;
}

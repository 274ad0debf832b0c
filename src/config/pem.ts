/**
 * Reading and checking PEM files, for every place a config names one (a TLS listener's
 * certificates and client CA, a pool's TLS to its servers): one wording for every problem, so a
 * user reads the same sentence whichever key named the file. Each function throws a
 * `PemProblem` whose message starts with the file's label.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A PEM file that cannot be used; the message names the file and the reason. */
export class PemProblem extends Error {}

/** Why a file could not be read, in words: "no such file", "permission denied"... */
export function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return (error as Error).message;
}

/** The bytes of `file`; `label` is how messages name it. */
export function readPemFile(file: string, label: string = file): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new PemProblem(`cannot read ${label} (${readFailure(error)})`);
  }
}

/**
 * The first certificate of `pem`. With `now`, it must also be valid at that time (not expired,
 * not yet to come); without, its dates are not checked (a CA bundle may hold old roots).
 */
export function parseCertificate(pem: Buffer, label: string, now?: number): X509Certificate {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pem);
  } catch {
    throw new PemProblem(`${label} is not a PEM certificate`);
  }
  if (now !== undefined) checkValidity(x509, label, now);
  return x509;
}

/** Throws unless `x509` is valid at `now` (not expired, not before its start). */
export function checkValidity(x509: X509Certificate, label: string, now: number): void {
  if (Date.parse(x509.validTo) <= now) throw new PemProblem(`${label} expired on ${x509.validTo}`);
  if (Date.parse(x509.validFrom) > now)
    throw new PemProblem(`${label} is not valid before ${x509.validFrom}`);
}

/** The private key in `pem` (an encrypted key cannot be used: there is no passphrase to give). */
export function parsePrivateKey(pem: Buffer, label: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch {
    throw new PemProblem(`${label} is not a PEM private key (or it is encrypted)`);
  }
}

/** Throws unless `key` is the private key of `x509`. */
export function checkKeyPair(
  x509: X509Certificate,
  key: KeyObject,
  certLabel: string,
  keyLabel: string,
): void {
  if (!x509.checkPrivateKey(key)) {
    throw new PemProblem(`${keyLabel} is not the private key of the certificate in ${certLabel}`);
  }
}

/**
 * A pool's `tls` (TLS to its servers): the files it names are read and checked when the config
 * is loaded, so that an unreadable file, a key that does not match its certificate or an expired
 * certificate is a config error naming the key, the file and the reason, never a failure at the
 * first request. The bytes read are kept beside the normalized config (not in it: it must
 * round-trip to YAML and never show a private key), and compared on reload, so that a rotated
 * file with the same name is applied by a reload.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ValueError } from './errors.js';
import { checkKeyPair, PemProblem, parseCertificate, parsePrivateKey, readPemFile } from './pem.js';
import type { PoolTlsConfig } from './types.js';

/** The contents of the files a pool's `tls` names. */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

const materials = new WeakMap<PoolTlsConfig, TlsMaterial>();

type FileKey = 'ca' | 'cert' | 'key';
export type TlsProblem = (key: keyof PoolTlsConfig, message: string) => void;

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** `serverName`: the name sent as SNI and checked against the server's certificate. */
export function serverNameValue(input: unknown): string {
  const name = typeof input === 'string' ? input.toLowerCase() : '';
  if (!HOST_NAME.test(name) || isIP(name) !== 0) {
    throw new ValueError('a DNS name like "app.internal" (no wildcard, port or IP address)', input);
  }
  return name;
}

/** Reads and checks the files of `tls`; every problem goes to `problem`, the material is kept. */
export function loadServerTls(tls: PoolTlsConfig, problem: TlsProblem): void {
  const material: TlsMaterial = {};
  const at = <T>(key: FileKey, step: () => T): T | undefined => {
    try {
      return step();
    } catch (error) {
      if (!(error instanceof PemProblem)) throw error;
      problem(key, error.message);
      return undefined;
    }
  };
  const label = (key: FileKey) => JSON.stringify(tls[key]);
  const read = (key: FileKey) =>
    tls[key] === undefined ? undefined : at(key, () => readPemFile(tls[key]!, label(key)));
  const ca = read('ca');
  if (ca !== undefined && at('ca', () => checkCa(ca, label('ca'))) !== undefined) material.ca = ca;
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    const missing = tls.cert === undefined ? 'cert' : 'key';
    problem(
      tls.cert === undefined ? 'key' : 'cert',
      `expected "${missing}" with it (a client certificate needs both), got none`,
    );
  }
  const cert = read('cert');
  const key = read('key');
  const x509 =
    cert !== undefined ? at('cert', () => parseCertificate(cert, label('cert'), Date.now())) : undefined;
  const privateKey = key !== undefined ? at('key', () => parsePrivateKey(key, label('key'))) : undefined;
  if (x509 !== undefined && privateKey !== undefined) {
    const paired = at('key', () => {
      checkKeyPair(x509, privateKey, label('cert'), label('key'));
      return true;
    });
    if (paired) {
      material.cert = cert;
      material.key = key;
    }
  }
  materials.set(tls, material);
}

/** The material of a loaded `tls` (read now if this object did not come from the loader). */
export function tlsMaterial(tls: PoolTlsConfig): TlsMaterial {
  let m = materials.get(tls);
  if (m === undefined) {
    m = {};
    if (tls.ca !== undefined) m.ca = readFileSync(tls.ca);
    if (tls.cert !== undefined) m.cert = readFileSync(tls.cert);
    if (tls.key !== undefined) m.key = readFileSync(tls.key);
    materials.set(tls, m);
  }
  return m;
}

/** A digest of settings and file contents: equal digests, same TLS to the servers. */
export function tlsFingerprint(tls: PoolTlsConfig): string {
  const m = tlsMaterial(tls);
  const h = createHash('sha256').update(JSON.stringify(tls));
  for (const b of [m.ca, m.cert, m.key]) h.update(b ?? '\0').update('\0');
  return h.digest('hex');
}

/** Whether two pools' `tls` name the same settings and files with the same contents. */
export function sameServerTls(a: PoolTlsConfig | undefined, b: PoolTlsConfig | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return tlsFingerprint(a) === tlsFingerprint(b);
}

/** A CA bundle: at least one PEM certificate, every one parseable, at least one not expired. */
function checkCa(pem: Buffer, label: string): true {
  const blocks = pem.toString('latin1').match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new PemProblem(`${label} holds no PEM certificate`);
  const now = Date.now();
  let usable = 0;
  for (const block of blocks) {
    if (Date.parse(parseCertificate(Buffer.from(block, 'latin1'), label).validTo) > now) usable++;
  }
  if (usable === 0) throw new PemProblem(`every certificate in ${label} has expired`);
  return true;
}

/**
 * Certificates made at test time with the openssl CLI (no private key is ever committed): a CA,
 * leaf certificates it signs for given DNS names, and an expired one.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface CertKit {
  dir: string;
  ca: CertFiles;
  /** A leaf certificate for `names` (the first is the CN), signed by the kit's CA. */
  leaf(file: string, names: string[], opts?: { client?: boolean }): CertFiles;
  /** A leaf whose validity ended in 2020. */
  expired(file: string, name: string): CertFiles;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeCertKit(): CertKit {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-tls-'));
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(
    [
      'req',
      '-x509',
      ...ecKey,
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=Fulcrum Test CA',
    ],
    dir,
  );
  const ca = { cert: join(dir, 'ca.pem'), key: join(dir, 'ca.key') };
  let serial = 1;
  const csr = (file: string, cn: string) =>
    openssl(['req', ...ecKey, '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${cn}`], dir);
  return {
    dir,
    ca,
    leaf(file, names, opts = {}) {
      csr(file, names[0]!);
      const ext = [
        `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
        `extendedKeyUsage=${opts.client ? 'clientAuth' : 'serverAuth'}`,
      ].join('\n');
      writeFileSync(join(dir, `${file}.ext`), `${ext}\n`);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${file}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-set_serial',
          String(serial++),
          '-days',
          '2',
          '-extfile',
          `${file}.ext`,
          '-out',
          `${file}.pem`,
        ],
        dir,
      );
      return { cert: join(dir, `${file}.pem`), key: join(dir, `${file}.key`) };
    },
    expired(file, name) {
      csr(file, name);
      writeFileSync(join(dir, 'index.txt'), '');
      writeFileSync(join(dir, 'serial'), '1000\n');
      writeFileSync(
        join(dir, 'ca.cnf'),
        [
          '[ca]',
          'default_ca = test',
          '[test]',
          'dir = .',
          'database = index.txt',
          'serial = serial',
          'new_certs_dir = .',
          'certificate = ca.pem',
          'private_key = ca.key',
          'default_md = sha256',
          'policy = any',
          'unique_subject = no',
          '[any]',
          'commonName = supplied',
          '',
        ].join('\n'),
      );
      openssl(
        [
          'ca',
          '-batch',
          '-config',
          'ca.cnf',
          '-in',
          `${file}.csr`,
          '-out',
          `${file}.pem`,
          '-startdate',
          '20200101000000Z',
          '-enddate',
          '20200102000000Z',
          '-notext',
        ],
        dir,
      );
      return { cert: join(dir, `${file}.pem`), key: join(dir, `${file}.key`) };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

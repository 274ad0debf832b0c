/**
 * Certificates made at run time with the openssl CLI (ECDSA P-256, valid two days): a CA and leaf
 * certificates it signs, in a fresh temporary directory. No private key is committed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

/** A temporary directory of certificates; `remove()` deletes it. */
export class CertDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'fulcrum-certs-'));

  /** A self-signed CA named `name`. */
  ca(name: string): CertFiles {
    const files = { cert: join(this.dir, `${name}.pem`), key: join(this.dir, `${name}.key`) };
    openssl(
      [
        'req',
        '-x509',
        ...EC,
        '-keyout',
        files.key,
        '-out',
        files.cert,
        '-days',
        '2',
        '-subj',
        `/CN=${name}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      this.dir,
    );
    return files;
  }

  /** A certificate for `names` (DNS names; "127.0.0.1" as an IP SAN), signed by `ca`. */
  leaf(ca: CertFiles, file: string, names: string[]): CertFiles {
    const files = { cert: join(this.dir, `${file}.pem`), key: join(this.dir, `${file}.key`) };
    const csr = join(this.dir, `${file}.csr`);
    const ext = join(this.dir, `${file}.ext`);
    const san = names.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    openssl(['req', '-new', ...EC, '-keyout', files.key, '-out', csr, '-subj', `/CN=${names[0]}`], this.dir);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        ca.cert,
        '-CAkey',
        ca.key,
        '-CAcreateserial',
        '-days',
        '2',
        '-out',
        files.cert,
        '-extfile',
        ext,
      ],
      this.dir,
    );
    return files;
  }

  /** A certificate signed by `ca` that expired long ago (2020-01-02), via `openssl ca` and its dates. */
  expired(ca: CertFiles, file: string): CertFiles {
    const files = { cert: join(this.dir, `${file}.pem`), key: join(this.dir, `${file}.key`) };
    const csr = join(this.dir, `${file}.csr`);
    const conf = join(this.dir, `${file}.cnf`);
    writeFileSync(join(this.dir, `${file}.index`), '');
    writeFileSync(join(this.dir, `${file}.serial`), '01\n');
    writeFileSync(
      conf,
      `[ca]\ndefault_ca=d\n[d]\ndatabase=${file}.index\nnew_certs_dir=.\nserial=${file}.serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n`,
    );
    openssl(['req', '-new', ...EC, '-keyout', files.key, '-out', csr, '-subj', `/CN=${file}`], this.dir);
    openssl(
      [
        'ca',
        '-batch',
        '-config',
        conf,
        '-cert',
        ca.cert,
        '-keyfile',
        ca.key,
        '-in',
        csr,
        '-out',
        files.cert,
        '-startdate',
        '20200101000000Z',
        '-enddate',
        '20200102000000Z',
        '-notext',
      ],
      this.dir,
    );
    return files;
  }

  read(path: string): Buffer {
    return readFileSync(path);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

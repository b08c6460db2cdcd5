// Throwaway PKI for the edge tests (openssl CLI): a CA, and certificates it issues for servers
// (DNS or IP names) and for clients (the brokers' tunnel certificates).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

/** Runs openssl with `words` (space-separated, none containing a space) then `more`. */
function openssl(words: string, ...more: string[]): void {
  const r = spawnSync('openssl', [...words.split(' '), ...more], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${words} failed: ${r.stderr}`);
}

const NEW_KEY = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';

const files = (certFile: string, keyFile: string): CertFiles => ({
  certFile,
  keyFile,
  cert: readFileSync(certFile),
  key: readFileSync(keyFile),
});

/** A self-signed CA named `name` in `dir`. */
export function makeCa(dir: string, name: string): CertFiles {
  const certFile = join(dir, `${name}-ca.crt`);
  const keyFile = join(dir, `${name}-ca.key`);
  openssl(
    `req -x509 ${NEW_KEY} -days 1 -addext basicConstraints=critical,CA:TRUE`,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-subj',
    `/CN=${name} test CA`,
  );
  return files(certFile, keyFile);
}

/** A certificate from `ca` named `name`: a server's for `altNames` (DNS:x, IP:y), or a client's. */
export function issue(
  dir: string,
  ca: CertFiles,
  name: string,
  usage: { server: string[] } | { client: true },
): CertFiles {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  openssl(`req -new ${NEW_KEY}`, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`);
  writeFileSync(
    ext,
    'server' in usage
      ? `subjectAltName=${usage.server.join(',')}\nextendedKeyUsage=serverAuth\n`
      : 'extendedKeyUsage=clientAuth\n',
  );
  openssl(
    'x509 -req -CAcreateserial -days 1',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-out',
    certFile,
    '-extfile',
    ext,
  );
  return files(certFile, keyFile);
}

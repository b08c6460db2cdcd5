// A throwaway TLS certificate for the broker's HTTPS in tests.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A self-signed certificate for an IP address (openssl CLI), for the broker's HTTPS in tests. */
export function selfSignedCert(
  dir: string,
  ip = '127.0.0.1',
): { certFile: string; keyFile: string; ca: Buffer } {
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      `/CN=${ip}`,
      '-addext',
      `subjectAltName=IP:${ip}`,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { certFile, keyFile, ca: readFileSync(certFile) };
}

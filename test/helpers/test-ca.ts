/**
 * Test helper: a local certificate authority made with openssl in a temporary directory, and certificates for
 * test peers: CA-signed (trusted once the CA is added with POSTERN_TLS_CA_FILE / trustExtraCas) or self-signed,
 * for the right or the wrong name. Nothing here is trusted by anything outside the test process.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCert {
  cert: string;
  key: string;
}

export interface TestCa {
  /** PEM of the CA certificate (the file `caFile` holds it too). */
  caPem: string;
  caFile: string;
  /** A certificate for `names` (DNS names or IP addresses) signed by the CA. */
  issue(names: string[]): TestCert;
  /** A self-signed certificate for `names`: valid name, untrusted chain. */
  selfSigned(names: string[]): TestCert;
  close(): void;
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: 'pipe' });
const san = (names: string[]) => names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');

export function createTestCa(name = 'Postern Test CA'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'postern-ca-'));
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30'].concat([
      '-subj',
      `/CN=${name}`,
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]),
    dir,
  );
  let seq = 0;
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    caPem: read('ca.pem'),
    caFile: join(dir, 'ca.pem'),
    issue(names) {
      const n = ++seq;
      openssl(
        [
          'req',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-subj',
          `/CN=${names[0]}`,
        ].concat(['-keyout', `leaf${n}.key`, '-out', `leaf${n}.csr`]),
        dir,
      );
      writeFileSync(
        join(dir, `leaf${n}.ext`),
        `subjectAltName=${san(names)}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
      );
      openssl(
        ['x509', '-req', '-in', `leaf${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial']
          .concat(['-days', '30'])
          .concat(['-extfile', `leaf${n}.ext`, '-out', `leaf${n}.pem`]),
        dir,
      );
      return { cert: read(`leaf${n}.pem`) + read('ca.pem'), key: read(`leaf${n}.key`) };
    },
    selfSigned(names) {
      const n = ++seq;
      openssl(
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30']
          .concat(['-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${san(names)}`])
          .concat(['-keyout', `self${n}.key`, '-out', `self${n}.pem`]),
        dir,
      );
      return { cert: read(`self${n}.pem`), key: read(`self${n}.key`) };
    },
    close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

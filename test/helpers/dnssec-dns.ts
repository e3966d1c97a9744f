/**
 * Test helper: a DNSSEC-validating resolver on loopback for DANE tests. Debian's unbound serves locally signed
 * zones as `auth-zone`s (for-upstream: answers go through its validator like fetched data) with the signed
 * zone's DS as trust anchor, so answers from a signed zone carry the AD bit, answers from an unsigned zone do
 * not, and data whose signature does not verify (bogus) gets SERVFAIL. Zones are signed with ldns-signzone
 * (ldnsutils). Every other name is refused by a local zone, and the root hints point at loopback, which unbound
 * never queries (do-not-query-localhost): nothing leaves the machine.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDnssecResolver } from '../../services/delivery/dnssec.ts';
import { startDaemon } from './daemon.ts';

export const UNBOUND = process.env['UNBOUND'] ?? '/usr/sbin/unbound';

export interface TestZone {
  /** Zone apex, e.g. `dane.test`. */
  name: string;
  /** Resource records in zone-file syntax, names relative to the apex (SOA and NS are added). */
  records: string[];
  /** Sign the zone and trust it (else it is served unsigned: answers are "insecure", no AD bit). */
  signed: boolean;
  /**
   * Owner names (relative) whose TLSA data is altered after signing: their signatures no longer verify, so the
   * validating resolver answers SERVFAIL (bogus).
   */
  tamperTlsa?: string[];
}

export interface ValidatingResolver {
  /** 'host:port' for POSTERN_DNS_SERVERS. */
  server: string;
  close(): Promise<void>;
}

function writeZone(dir: string, zone: TestZone, host: string): string {
  const file = join(dir, `${zone.name}.zone`);
  writeFileSync(
    file,
    [
      `$ORIGIN ${zone.name}.`,
      '$TTL 300',
      `@ IN SOA ns.${zone.name}. hostmaster.${zone.name}. 1 3600 600 86400 300`,
      `@ IN NS ns.${zone.name}.`,
      `ns IN A ${host}`,
      ...zone.records,
      '',
    ].join('\n'),
  );
  if (!zone.signed) return file;
  const keygen = (ksk: boolean) =>
    execFileSync('ldns-keygen', ['-a', 'ECDSAP256SHA256', ...(ksk ? ['-k'] : []), zone.name], { cwd: dir })
      .toString()
      .trim();
  const ksk = keygen(true);
  const zsk = keygen(false);
  execFileSync('ldns-signzone', ['-f', `${file}.signed`, file, join(dir, zsk), join(dir, ksk)], { cwd: dir });
  if (zone.tamperTlsa?.length) {
    // Flip the last hex digit of the TLSA data of the named owners: the RRSIG no longer matches.
    const signed = readFileSync(`${file}.signed`, 'utf8')
      .split('\n')
      .map((line) => {
        const owner = line.split(/\s+/)[0] ?? '';
        const tampered = zone.tamperTlsa!.some((o) => owner === `${o}.${zone.name}.`);
        if (!tampered || !/\sTLSA\s/.test(line)) return line;
        return line.replace(/([0-9a-f])$/i, (d) => (d.toLowerCase() === '0' ? '1' : '0'));
      })
      .join('\n');
    writeFileSync(`${file}.signed`, signed);
  }
  return `${file}.signed`;
}

export async function startValidatingResolver(
  zones: TestZone[],
  host = '127.0.0.40',
): Promise<ValidatingResolver> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-unbound-'));
  const anchors: string[] = [];
  const authZones: string[] = [];
  for (const zone of zones) {
    const file = writeZone(dir, zone, host);
    authZones.push(
      `auth-zone:\n  name: "${zone.name}."\n  zonefile: "${file}"\n  for-upstream: yes\n  for-downstream: no\n  fallback-enabled: no\n`,
    );
    if (zone.signed) {
      const dsFile = readdirDs(dir, zone.name);
      anchors.push(`  trust-anchor-file: "${dsFile}"`);
    }
  }
  writeFileSync(
    join(dir, 'root.hints'),
    '. 3600000 NS a.root.invalid.\na.root.invalid. 3600000 A 127.0.0.1\n',
  );
  // A free port for UDP+TCP: unbound binds both; bounded retries on a clash.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const conf = join(dir, 'unbound.conf');
    writeFileSync(
      conf,
      [
        'server:',
        `  interface: ${host}`,
        `  port: ${port}`,
        '  do-ip6: no',
        '  do-daemonize: no',
        '  username: ""',
        '  chroot: ""',
        `  directory: "${dir}"`,
        '  pidfile: ""',
        '  use-syslog: no',
        '  logfile: ""',
        '  verbosity: 1',
        '  module-config: "validator iterator"',
        `  root-hints: "${join(dir, 'root.hints')}"`,
        '  do-not-query-localhost: yes',
        '  access-control: 127.0.0.0/8 allow',
        '  cache-max-ttl: 0',
        '  local-zone: "." refuse',
        ...zones.map((z) => `  local-zone: "${z.name}." transparent`),
        ...anchors,
        '',
        ...authZones,
      ].join('\n'),
    );
    const daemon = startDaemon(UNBOUND, ['-d', '-c', conf], dir);
    const close = daemon.close;
    const resolver = createDnssecResolver([`${host}:${port}`], 500);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (daemon.exited()) break;
      try {
        await resolver.address(`ns.${zones[0]!.name}`);
        return { server: `${host}:${port}`, close };
      } catch {
        if (Date.now() > deadline) {
          await close();
          throw new Error(`unbound did not answer on ${host}:${port}: ${daemon.stderr().trim()}`);
        }
        await sleep(100);
      }
    }
    if (!/address already in use/i.test(daemon.stderr())) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`unbound exited: ${daemon.stderr().trim()}`);
    }
  }
  throw new Error('no free port for unbound');
}

/** The zone's DS records (ldns-keygen writes one per key) as a trust-anchor file. */
function readdirDs(dir: string, zone: string): string {
  const ds = readdirSync(dir).filter((f) => f.startsWith(`K${zone}.+`) && f.endsWith('.ds'));
  const file = join(dir, `${zone}.anchor`);
  writeFileSync(file, ds.map((f) => readFileSync(join(dir, f), 'utf8')).join(''));
  return file;
}

/**
 * Postfix 3.7 as a loopback relay: its own config dir and queue_directory under the run's work dir,
 * `postfix -c DIR start`, one smtpd on 127.0.0.1:<port>, everything relayed to the sink (healthy.bench and
 * any other domain) or to the dead destination (dead.bench) through a texthash transport map. No chroot
 * (the queue dir is not a chroot jail), no TLS (the sink and Postern's smarthost use none either),
 * in_flow_delay = 0 so Postfix does not throttle the generator. Postfix fsyncs each queue file before it
 * answers 250, Postern waits for the JetStream PubAck: both are "durably stored" in their own sense.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readProc } from '../lib/proc-stats.ts';
import { listProcesses } from '../lib/process-tree.ts';
import type { Destinations, RunningSystem } from './system.ts';

const MASTER_CF = [
  // service type private unpriv chroot wakeup maxproc command
  'pickup unix n - n 60 1 pickup',
  'cleanup unix n - n - 0 cleanup',
  'qmgr unix n - n 300 1 qmgr',
  'rewrite unix - - n - - trivial-rewrite',
  'bounce unix - - n - 0 bounce',
  'defer unix - - n - 0 bounce',
  'trace unix - - n - 0 bounce',
  'verify unix - - n - 1 verify',
  'flush unix n - n 1000? 0 flush',
  'proxymap unix - - n - - proxymap',
  'smtp unix - - n - - smtp',
  'relay unix - - n - - smtp',
  'showq unix n - n - - showq',
  'error unix - - n - - error',
  'retry unix - - n - - error',
  'discard unix - - n - - discard',
  'anvil unix - - n - 1 anvil',
  'scache unix - - n - 1 scache',
  'postlog unix-dgram n - n - 1 postlogd',
];

/** Postfix version string (e.g. "3.7.11"), or undefined when it is not installed. */
export function postfixVersion(): string | undefined {
  try {
    return execFileSync('postconf', ['-d', '-h', 'mail_version'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

export async function startPostfix(opts: {
  dir: string;
  port: number;
  to: Destinations;
}): Promise<RunningSystem> {
  const { dir, port, to } = opts;
  rmSync(dir, { recursive: true, force: true });
  const queue = join(dir, 'queue');
  const data = join(dir, 'data');
  mkdirSync(queue, { recursive: true });
  mkdirSync(data, { recursive: true });
  // The data dir must belong to the mail_owner (postfix); the queue dir root stays root's.
  const uid = Number(execFileSync('id', ['-u', 'postfix'], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', 'postfix'], { encoding: 'utf8' }));
  chownSync(data, uid, gid);
  const healthy = `[${to.healthy.host}]:${to.healthy.port}`;
  writeFileSync(
    join(dir, 'transport'),
    `dead.bench smtp:[${to.dead.host}]:${to.dead.port}\nhealthy.bench smtp:${healthy}\n`,
  );
  writeFileSync(
    join(dir, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      'myhostname = postfix-bench.localdomain',
      'mydomain = localdomain',
      'mydestination =',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mynetworks = 127.0.0.0/8',
      `relayhost = ${healthy}`,
      `transport_maps = texthash:${join(dir, 'transport')}`,
      'in_flow_delay = 0',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      `maillog_file = ${join(dir, 'maillog')}`,
      `maillog_file_prefixes = ${dir}`,
      'alias_maps =',
      'alias_database =',
      'local_recipient_maps =',
      'smtp_tls_security_level = none',
      'smtpd_tls_security_level = none',
      'message_size_limit = 67108864',
      'biff = no',
      'syslog_name = postfix-bench',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'master.cf'),
    [`127.0.0.1:${port} inet n - n - - smtpd`, ...MASTER_CF, ''].join('\n'),
  );
  // `postfix start` prints nothing unless stderr is a tty: capture it and look at the maillog on failure.
  try {
    execFileSync('postfix', ['-c', dir, 'start'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const log = existsSync(join(dir, 'maillog'))
      ? readFileSync(join(dir, 'maillog'), 'utf8').slice(-2000)
      : '';
    throw new Error(`postfix start failed: ${(err as Error).message}\n${log}`);
  }
  const pidFile = join(queue, 'pid', 'master.pid');
  let master = 0;
  for (let i = 0; i < 100 && !master; i++) {
    if (existsSync(pidFile)) master = Number(readFileSync(pidFile, 'utf8').trim());
    if (!master) await new Promise((r) => setTimeout(r, 50));
  }
  if (!master) throw new Error(`postfix master did not write ${pidFile}`);
  let stopped = false;
  return {
    label: 'postfix',
    smtp: { host: '127.0.0.1', port },
    processes() {
      const out = new Map<number, string>([[master, 'postfix:master']]);
      for (const p of listProcesses()) if (p.ppid === master) out.set(p.pid, `postfix:${p.comm}`);
      return out;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        execFileSync('postfix', ['-c', dir, 'stop'], { stdio: 'ignore' });
      } catch {
        // Already gone or half-started: make sure the master is not left behind.
        if (readProc(master)) process.kill(master, 'SIGKILL');
      }
      for (let i = 0; i < 100 && readProc(master); i++) await new Promise((r) => setTimeout(r, 50));
    },
  };
}

/**
 * The receiving side of the bench: an smtp-server sink in its own process (so its CPU is not the
 * orchestrator's), standing in for the smarthost / MX. It records, per delivered recipient, the arrival time
 * and — when the message carries the generator's `X-Bench-Id` / `X-Bench-Sent` headers — the end-to-end
 * latency. Recipients are keyed by (bench id, address) so duplicates and losses are countable; smtp-source
 * messages have no bench id but `-N` makes every recipient address unique.
 *
 * Run by `bench/lib/sink-client.ts` through `fork()`; listens on every `--listen host:port:mode` given,
 * mode `accept` (250), `tempfail` (451 4.3.0 at RCPT: a dead destination that keeps mail queued) or `reject`
 * (550 5.1.1 at RCPT: a destination that bounces; the soak run mixes these in).
 * IPC: { cmd: 'reset' | 'count' | 'snapshot' } → reply with counters (and arrays for snapshot).
 * Note: smtp-server delays every greeting by 100 ms (early-talker detection), so senders that do not reuse
 * connections pay for it here — the same price a real MX with greet delay charges.
 */
import { SMTPServer } from 'smtp-server';

type Mode = 'accept' | 'tempfail' | 'reject';

const now = () => performance.timeOrigin + performance.now();

let keys = new Set<string>();
let arrivals: number[] = [];
let e2e: number[] = [];
let duplicates = 0;
let tempfailed = 0;
let rejected = 0;

function reset(): void {
  keys = new Set();
  arrivals = [];
  e2e = [];
  duplicates = 0;
  tempfailed = 0;
  rejected = 0;
}

function header(head: string, name: string): string | undefined {
  return new RegExp(`^${name}:\\s*(\\S+)`, 'im').exec(head)?.[1];
}

function listen(host: string, port: number, mode: Mode): Promise<SMTPServer> {
  const server = new SMTPServer({
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    hideSTARTTLS: true,
    maxClients: 2000,
    size: 64 * 1024 * 1024,
    banner: `bench sink (${mode})`,
    onRcptTo(_address, _session, cb) {
      if (mode === 'reject') {
        rejected += 1;
        return cb(Object.assign(new Error('5.1.1 bench: no such user'), { responseCode: 550 }));
      }
      if (mode === 'tempfail') {
        tempfailed += 1;
        const err = Object.assign(new Error('4.3.0 bench: destination temporarily unavailable'), {
          responseCode: 451,
        });
        return cb(err);
      }
      cb();
    },
    onData(stream, session, cb) {
      let head = '';
      let headDone = false;
      stream.on('data', (chunk: Buffer) => {
        if (headDone) return;
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end >= 0 || head.length > 16384) {
          headDone = true;
          if (end >= 0) head = head.slice(0, end);
        }
      });
      stream.on('end', () => {
        const t = now();
        const id = header(head, 'X-Bench-Id');
        const sent = Number(header(head, 'X-Bench-Sent'));
        for (const rcpt of session.envelope.rcptTo) {
          const key = `${id ?? ''}|${rcpt.address.toLowerCase()}`;
          if (keys.has(key)) {
            duplicates += 1;
            continue;
          }
          keys.add(key);
          arrivals.push(t);
          if (Number.isFinite(sent) && sent > 0) e2e.push(t - sent);
        }
        cb();
      });
    },
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      // A client resetting its connection (a system under test being stopped) is not the sink's failure.
      server.on('error', () => {});
      resolve(server);
    });
  });
}

const specs = process.argv
  .slice(2)
  .filter((_a, i, all) => all[i - 1] === '--listen')
  .map((s) => {
    const [host, port, mode] = s.split(':');
    if (!host?.startsWith('127.')) throw new Error(`sink binds loopback only, not ${host}`);
    return { host, port: Number(port), mode: (mode ?? 'accept') as Mode };
  });

const servers = await Promise.all(specs.map((s) => listen(s.host, s.port, s.mode)));

process.on('message', (msg: { cmd: string }) => {
  const counts = { received: keys.size, duplicates, tempfailed, rejected };
  if (msg.cmd === 'reset') reset();
  if (msg.cmd === 'snapshot') process.send?.({ ...counts, arrivals, e2e });
  else process.send?.(counts);
});
process.on('disconnect', () => {
  for (const s of servers) s.close();
  process.exit(0);
});
process.send?.({ ready: true });

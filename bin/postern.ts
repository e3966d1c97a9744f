#!/usr/bin/env node
/**
 * The `postern` command line.
 *   postern local --config FILE [--data-dir DIR] [--smtp-port N] [--submission-port N] [--api-port N | --no-api] [--ingress N]
 *                 [--delivery N] [--nats-port N] [--nats-sync always|default] [--nats-cluster N] [--admin-port N]
 *                 [--metrics-base-port N]
 *   postern apply -f FILE [--data-dir DIR | --nats URL]
 *   postern validate -f FILE
 *   postern queue list|summary|show|delete|retry|hold|release [ID] [--from ADDR] [--domain DOMAIN] [--status S] [--json] [--data-dir DIR | --admin URL]
 *   postern suppression list|show|add|remove|export|import [ADDRESS|FILE] [--domain D] [--reason R] [--note TEXT]
 *                       [--expires 30d] [--format csv|json] [--skip-invalid] [--json] [--data-dir DIR | --admin URL]
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectNats } from '../services/common/nats.ts';
import { parseKeyFile, SECRETS_KEY_FILE_ENV, secretBox } from '../services/common/secrets.ts';
import { ConfigFileError, loadConfigFile, localKeyFile, writeConfig } from '../services/local/config-file.ts';
import { destinationsCommand } from '../services/local/destinations-client.ts';
import { startLocal } from '../services/local/local-mode.ts';
import { QueueClientError, queueCommand } from '../services/local/queue-client.ts';
import { suppressionCommand } from '../services/local/suppression-client.ts';

const USAGE = `usage:
  postern local --config FILE [--data-dir DIR] [--smtp-port N] [--submission-port N] [--api-port N | --no-api]
                [--ingress N] [--delivery N]
                [--nats-port N] [--nats-sync always|default] [--nats-cluster N] [--admin-port N] [--metrics-base-port N]
  postern apply -f FILE [--data-dir DIR | --nats URL]
  postern validate -f FILE
  postern queue list|summary|show|delete|retry|hold|release [ID] [--from ADDR] [--domain DOMAIN] [--status S] [--json] [--data-dir DIR | --admin URL]
  postern suppression list|show|add|remove|export|import [ADDRESS|FILE] [--domain D] [--reason manual|complaint|unsubscribe|hard-bounce]
                      [--note TEXT] [--expires 30d] [--format csv|json] [--skip-invalid] [--json] [--data-dir DIR | --admin URL]`;

function fail(message: string, code = 2): never {
  process.stderr.write(`postern: ${message}\n`);
  process.exit(code);
}

function int(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`--${name} must be a whole number (got "${value}")`);
  return n;
}

async function local(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      'data-dir': { type: 'string', default: '.postern' },
      host: { type: 'string', default: '127.0.0.1' },
      'smtp-port': { type: 'string' },
      'submission-port': { type: 'string' },
      'api-port': { type: 'string' },
      'no-api': { type: 'boolean', default: false },
      ingress: { type: 'string' },
      delivery: { type: 'string' },
      'nats-port': { type: 'string' },
      'nats-sync': { type: 'string', default: 'default' },
      'nats-cluster': { type: 'string', default: '1' },
      'admin-port': { type: 'string' },
      'metrics-base-port': { type: 'string' },
    },
  });
  if (!values.config) fail(`local needs --config FILE\n${USAGE}`);
  const natsSync = values['nats-sync'];
  if (natsSync !== 'always' && natsSync !== 'default')
    fail(`--nats-sync must be always or default (got "${natsSync}")`);
  const natsCluster = Number(values['nats-cluster']);
  if (!Number.isInteger(natsCluster) || natsCluster < 1 || natsCluster === 2 || natsCluster > 9)
    fail(
      `--nats-cluster must be 1 or 3..9 nodes (got "${values['nats-cluster']}"); JetStream needs a majority`,
    );
  const say = (obj: Record<string, unknown>) =>
    process.stdout.write(`${JSON.stringify({ time: Date.now(), service: 'postern', ...obj })}\n`);
  const handle = await startLocal({
    configPath: values.config,
    dataDir: values['data-dir'],
    host: values.host,
    smtpPort: int(values['smtp-port'], 'smtp-port'),
    submissionPort: int(values['submission-port'], 'submission-port'),
    apiPort: values['no-api'] ? false : (int(values['api-port'], 'api-port') ?? 2580),
    ingressProcesses: int(values.ingress, 'ingress'),
    deliveryProcesses: int(values.delivery, 'delivery'),
    natsPort: int(values['nats-port'], 'nats-port'),
    natsSync,
    natsCluster,
    adminPort: int(values['admin-port'], 'admin-port'),
    metricsBasePort: int(values['metrics-base-port'], 'metrics-base-port'),
    onLine: (_name, line) => process.stdout.write(`${line}\n`),
    passthrough: { out: process.stdout, err: process.stderr },
  });
  handle.supervisor.on('restart', (name) => say({ msg: 'restarting service', child: name }));
  handle.natsSupervisor.on('exit', (name, code, signal) =>
    say({ msg: 'nats-server exited; restarting', node: name, code, signal }),
  );
  handle.natsSupervisor.on('restart', (name) => say({ msg: 'nats-server restarted', node: name }));
  say({
    msg: 'postern ready',
    smtp: `${values.host}:${handle.smtpPort}`,
    submission: `${values.host}:${handle.submissionPort}`,
    ...(handle.apiPort !== undefined ? { api: `http://${values.host}:${handle.apiPort}/v1/messages` } : {}),
    nats: handle.natsUrl,
    admin: `http://${values.host}:${handle.adminPort}`,
    services: Object.fromEntries([...handle.supervisor.children].map(([n, c]) => [n, c.ready])),
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say({ msg: 'stopping', signal });
    await handle.stop();
    say({ msg: 'stopped' });
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

async function apply(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      file: { type: 'string', short: 'f' },
      'data-dir': { type: 'string', default: '.postern' },
      nats: { type: 'string' },
    },
  });
  if (!values.file) fail(`apply needs -f FILE\n${USAGE}`);
  // Seal with the running instance's key; an instance elsewhere (--nats) needs POSTERN_SECRETS_KEY_FILE.
  const keyFile = process.env[SECRETS_KEY_FILE_ENV] ?? localKeyFile(values['data-dir']);
  const box = existsSync(keyFile) ? secretBox(parseKeyFile(readFileSync(keyFile, 'utf8'))) : undefined;
  const entries = loadConfigFile(values.file, box);
  let url = values.nats;
  if (!url) {
    try {
      url = (JSON.parse(readFileSync(join(values['data-dir'], 'state.json'), 'utf8')) as { natsUrl: string })
        .natsUrl;
    } catch {
      fail(
        `no running local instance found in ${values['data-dir']} (start one with postern local, or pass --nats URL)`,
      );
    }
  }
  const nc = await connectNats(url, 'postern-apply').catch((err: Error) =>
    fail(`cannot reach NATS at ${url}: ${err.message}`, 1),
  );
  const { written } = await writeConfig(nc, entries, false);
  await nc.close();
  process.stdout.write(`applied ${written} document(s): ${[...entries.keys()].join(', ')}\n`);
}

function validate(args: string[]) {
  const { values } = parseArgs({ args, options: { file: { type: 'string', short: 'f' } } });
  if (!values.file) fail(`validate needs -f FILE\n${USAGE}`);
  // Validation resolves Secrets like apply does; a throwaway key seals them, nothing is written.
  const entries = loadConfigFile(values.file, secretBox([randomBytes(32)]));
  process.stdout.write(`valid: ${[...entries.keys()].join(', ')}\n`);
}

function readState(dataDir: string): { natsUrl: string; adminPort: number } {
  try {
    return JSON.parse(readFileSync(join(dataDir, 'state.json'), 'utf8')) as {
      natsUrl: string;
      adminPort: number;
    };
  } catch {
    fail(
      `no running local instance found in ${dataDir} (start one with postern local, or pass --nats/--admin)`,
    );
  }
}

/** Options of the commands that talk to the queue admin API: a local instance's data dir, or its URL. */
const ADMIN_OPTIONS = {
  'data-dir': { type: 'string', default: '.postern' },
  admin: { type: 'string' },
} as const;

/** The queue admin API's base URL: --admin, else the running local instance's. */
function adminBase(values: { admin?: string; 'data-dir': string }): string {
  return values.admin ?? `http://127.0.0.1:${readState(values['data-dir']).adminPort}`;
}

async function queue(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...ADMIN_OPTIONS,
      from: { type: 'string' },
      domain: { type: 'string' },
      status: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const [action = 'list', id] = positionals;
  const base = adminBase(values);
  const filter = {
    ...(values.from ? { from: values.from } : {}),
    ...(values.domain ? { domain: values.domain } : {}),
    ...(values.status ? { status: values.status } : {}),
    ...(values.json ? { json: true } : {}),
  };
  process.stdout.write(await queueCommand(base, action, id, filter));
}

async function destinations(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...ADMIN_OPTIONS,
      for: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const [action = 'list', site] = positionals;
  const base = adminBase(values);
  process.stdout.write(
    await destinationsCommand(base, action, site, {
      ...(values.for ? { for: values.for } : {}),
      json: values.json ?? false,
    }),
  );
}

async function suppression(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...ADMIN_OPTIONS,
      domain: { type: 'string' },
      reason: { type: 'string' },
      note: { type: 'string' },
      expires: { type: 'string' },
      format: { type: 'string' },
      'skip-invalid': { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const [action = 'list', arg] = positionals;
  const { admin: _a, 'data-dir': _d, 'skip-invalid': skipInvalid, ...opts } = values;
  process.stdout.write(
    await suppressionCommand(adminBase(values), action, arg, {
      ...opts,
      ...(skipInvalid ? { skipInvalid } : {}),
    }),
  );
}

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === 'local') await local(rest);
  else if (command === 'apply') await apply(rest);
  else if (command === 'validate') validate(rest);
  else if (command === 'queue') await queue(rest);
  else if (command === 'destinations') await destinations(rest);
  else if (command === 'suppression') await suppression(rest);
  else fail(USAGE);
} catch (err) {
  if (err instanceof ConfigFileError) fail(`invalid configuration:\n${err.message}`, 1);
  if (err instanceof QueueClientError) fail(err.message, 1);
  if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
    fail(`${(err as Error).message}\n${USAGE}`);
  fail((err as Error).message, 1);
}

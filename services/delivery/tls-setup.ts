/**
 * Wiring of delivery's TLS policy support: extra trusted CAs, the shared MTA-STS cache, the DNSSEC-aware
 * resolver for DANE, and TLS-RPT (session records + the reporter) when enabled. One call from service.ts.
 */

import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ResolveRecords } from '../common/dns-resolver.ts';
import type { Logger } from '../common/telemetry.ts';
import type { DestinationContext } from './destination.ts';
import { createDnssecResolver } from './dnssec.ts';
import { createMtaStsResolver, openStsCache, usableAddresses } from './mta-sts.ts';
import type { DeliverySettings } from './settings.ts';
import { startTlsRptReporter, type TlsRptReporter } from './tlsrpt/reporter.ts';
import { createSessionRecorder, ensureTlsRptStream } from './tlsrpt/sessions.ts';

export interface TlsSupport {
  ctx: Pick<DestinationContext, 'mtaSts' | 'dnssec' | 'onTlsSession'>;
  reporter?: TlsRptReporter;
  close(): void;
}

/**
 * Adds the CAs of `file` to the process's default trust (Node's roots + NODE_EXTRA_CA_CERTS), which every TLS
 * client here uses: nodemailer's STARTTLS, mailauth's MTA-STS policy fetch, the TLS-RPT HTTPS POST.
 */
export function trustExtraCas(file: string): number {
  const pem = readFileSync(file, 'utf8');
  const extra = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (extra.length === 0) throw new Error(`POSTERN_TLS_CA_FILE ${file} holds no PEM certificate`);
  setDefaultCACertificates([...getCACertificates('default'), ...extra]);
  return extra.length;
}

export async function startTlsSupport(
  nc: NatsConnection,
  settings: DeliverySettings,
  resolveRecords: ResolveRecords | undefined,
  log: Logger,
  replicas = 1,
): Promise<TlsSupport> {
  if (settings.tlsCaFile) {
    const n = trustExtraCas(settings.tlsCaFile);
    log.info({ file: settings.tlsCaFile, certificates: n }, 'extra CA certificates trusted');
  }
  const kv = await openStsCache(nc, replicas);
  const mtaSts = createMtaStsResolver({
    kv,
    resolveRecords,
    allowLocalAddresses: settings.allowLoopbackMx,
    log,
  });
  const dnssec = createDnssecResolver(settings.dnsServers);
  const ctx: TlsSupport['ctx'] = { mtaSts, dnssec };
  const rpt = settings.tlsRpt;
  if (!rpt.enabled) return { ctx, close() {} };

  const js = jetstream(nc);
  await ensureTlsRptStream(nc, Math.max(2 * rpt.periodMs, 86_400_000), replicas);
  ctx.onTlsSession = createSessionRecorder(js, log);
  const txt = resolveRecords
    ? (name: string) => resolveRecords(name, 'TXT') as Promise<string[][]>
    : (name: string) => new Resolver().resolveTxt(name);
  const reporter = await startTlsRptReporter({
    nc,
    js,
    periodMs: rpt.periodMs,
    organization: rpt.organization,
    contact: rpt.contact,
    submitter: rpt.submitter,
    from: rpt.from,
    resolveTxt: txt,
    async resolveHost(name) {
      const ips = resolveRecords
        ? ((await resolveRecords(name, 'A')) as string[])
        : await new Resolver().resolve4(name);
      const usable = usableAddresses(ips, settings.allowLoopbackMx);
      if (!usable[0]) throw new Error(`no usable address for ${name}`);
      return usable[0];
    },
    log,
    replicas,
  });
  log.info({ periodMs: rpt.periodMs }, 'TLS-RPT reporting on');
  return { ctx, reporter, close: () => reporter.stop() };
}

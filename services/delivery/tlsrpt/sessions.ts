/**
 * TLS-RPT (RFC 8460) raw data: one record per SMTP session attempt of a policy-discovering route (mta-sts,
 * dane), published by the delivery process that made it on the `TLSRPT` stream (`mail.tlsrpt.<domain>`).
 * The stream is the cluster-wide counter: the reporter (reporter.ts) aggregates a period's records per policy
 * domain, so no per-session read-modify-write of shared counters is needed. Limits retention: records older
 * than two report periods are dropped by the server.
 */
import {
  DiscardPolicy,
  type JetStreamClient,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { NatsConnection } from '@nats-io/transport-node';
import { subjectToken } from '../../common/nats.ts';
import type { Logger } from '../../common/telemetry.ts';
import type { TlsFailureType } from '../../common/types.ts';

export const TLSRPT_STREAM = 'TLSRPT';
export const tlsRptSubject = (domain: string) => `mail.tlsrpt.${subjectToken(domain)}`;

/** One session (or refused connection) towards a policy domain. Field names follow RFC 8460 §4.4. */
export interface TlsSessionRecord {
  at: string;
  policyDomain: string;
  policyType: 'sts' | 'tlsa' | 'no-policy-found';
  policyString: string[];
  /** MTA-STS `mx` patterns (RFC 8460 `mx-host`). */
  mxHost: string[];
  receivingMxHostname: string;
  receivingIp?: string;
  sendingMtaIp?: string;
  result: 'success' | TlsFailureType;
  detail?: string;
}

/** Creates or updates the stream (idempotent). `keepMs`: how long records stay (≥ two report periods). */
export async function ensureTlsRptStream(nc: NatsConnection, keepMs: number, replicas = 1): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const cfg = {
    name: TLSRPT_STREAM,
    subjects: ['mail.tlsrpt.>'],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_age: nanos(keepMs),
    max_bytes: 256 * 1024 ** 2,
    discard: DiscardPolicy.Old,
  };
  try {
    await jsm.streams.info(TLSRPT_STREAM);
    await jsm.streams.update(TLSRPT_STREAM, cfg);
  } catch (err) {
    if (!/stream not found/i.test(String(err)) && (err as Error).name !== 'StreamNotFoundError') throw err;
    await jsm.streams.add(cfg);
  }
}

/**
 * A recorder delivery calls for every session. Publishing must not slow or fail mail: it is not awaited by
 * delivery, and a lost record only makes a report count one session fewer (logged).
 */
export function createSessionRecorder(js: JetStreamClient, log: Logger): (r: TlsSessionRecord) => void {
  return (r) => {
    js.publish(tlsRptSubject(r.policyDomain), JSON.stringify(r)).catch((err: Error) =>
      log.warn({ domain: r.policyDomain, err: err.message }, 'TLS-RPT session record lost'),
    );
  };
}

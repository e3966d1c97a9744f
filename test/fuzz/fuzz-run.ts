/**
 * One fuzz run: fast-check generates sessions from a seed (reproducible: the same seed plays the same
 * sessions), each is played against the target, and the run stops at the first violation, shrinks it to a
 * smaller failing session and reports it with its seed. The acceptance oracle — nothing accepted that should
 * not be — judges the envelopes the ingress published against the target's configuration, independently of the
 * ingress's own policy code.
 */
import { BlockList } from 'node:net';
import fc from 'fast-check';
import type { Envelope } from '../../services/common/types.ts';
import { runSession } from './fuzz-session.ts';
import type { FuzzTarget } from './fuzz-target.ts';
import { type FuzzCase, fuzzCase, TARGET } from './smtp-grammar.ts';

export interface FuzzStats {
  sessions: number;
  /** Reply count per code. */
  codes: Record<string, number>;
  /** `queued as` ids the clients saw. */
  queued: Set<string>;
}

export const newStats = (): FuzzStats => ({ sessions: 0, codes: {}, queued: new Set() });

export interface RunResult {
  seed: number;
  failed: boolean;
  /** fast-check's report (seed, path, shrunk counterexample, error) when failed. */
  report?: string;
}

/** Plays `numRuns` generated sessions from `seed`; stops at the first violation or crash. */
export async function fuzzRun(
  target: FuzzTarget,
  opts: { seed: number; numRuns: number; stats: FuzzStats; arbitrary?: fc.Arbitrary<FuzzCase> },
): Promise<RunResult> {
  const property = fc.asyncProperty(fc.limitShrink(opts.arbitrary ?? fuzzCase, 40), async (c) => {
    if (!target.alive()) throw new Error('ingress process is gone (crashed earlier in this run)');
    const o = await runSession(target, c);
    opts.stats.sessions++;
    for (const code of o.codes) opts.stats.codes[code] = (opts.stats.codes[code] ?? 0) + 1;
    for (const id of o.queuedIds) opts.stats.queued.add(id);
    if (!target.alive()) throw new Error(`ingress process died:\n${target.crashOutput()}`);
    if (o.violations.length > 0) throw new Error(o.violations.join('\n'));
  });
  const details = await fc.check(property, { seed: opts.seed, numRuns: opts.numRuns });
  if (!details.failed) return { seed: opts.seed, failed: false };
  const error =
    details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  return {
    seed: opts.seed,
    failed: true,
    report: `${fc.defaultReportMessage(details) ?? 'failed'}\n${error}`,
  };
}

const relayNet = new BlockList();
relayNet.addSubnet('192.0.2.0', 24, 'ipv4');

/** RFC 5321 Mailbox shape, stricter on purpose: no quoting, no routing characters, no literals, no controls. */
const MAILBOX_PART = '[^\\s"\\\\%!@<>()[\\],;:\\u0000-\\u001f\\u007f]';
const MAILBOX = new RegExp(`^${MAILBOX_PART}{1,64}@${MAILBOX_PART}{1,253}$`, 'u');

/** The recipients the target accepts from anyone (inbound domain, listed users, postmaster). */
function inboundAllowed(to: string): boolean {
  if (to.toLowerCase() === TARGET.postmaster) return true;
  const at = to.lastIndexOf('@');
  const local = to.slice(0, at).toLowerCase();
  const domain = to.slice(at + 1).toLowerCase();
  if (domain !== TARGET.inboundDomain) return false;
  return local === 'postmaster' || local === 'alice' || local.startsWith('team-');
}

/** Violations of the acceptance oracle in the envelopes the ingress published. */
export function checkEnvelopes(envelopes: Envelope[], queuedByClients: Set<string>): string[] {
  const out: string[] = [];
  const ids = new Set(envelopes.map((e) => e.id));
  for (const id of queuedByClients)
    if (!ids.has(id)) out.push(`client got "queued as ${id}" but no envelope has it`);
  for (const e of envelopes) {
    const relayClient =
      e.client.user === TARGET.user ||
      (/^\d+\.\d+\.\d+\.\d+$/.test(e.client.address) && relayNet.check(e.client.address));
    if (e.from !== '' && !MAILBOX.test(e.from))
      out.push(`${e.id}: accepted with sender ${JSON.stringify(e.from)}`);
    if (e.to.length === 0) out.push(`${e.id}: accepted without recipients`);
    for (const to of e.to) {
      if (!MAILBOX.test(to)) out.push(`${e.id}: accepted recipient ${JSON.stringify(to)}`);
      else if (!relayClient && !inboundAllowed(to))
        out.push(
          `${e.id}: relayed to ${JSON.stringify(to)} for ${e.client.address} (user ${e.client.user ?? 'none'})`,
        );
    }
  }
  return out;
}

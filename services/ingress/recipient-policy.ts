/**
 * The RCPT TO decision (pure: config snapshot + session facts in, verdict out). DESIGN §2:
 * inbound MailDomain → accept (550 5.1.1 for unlisted users when the domain lists recipients); any other domain →
 * relay only for a client a RelayPolicy allows (listed network or authenticated user, TLS when required, allowed
 * sender domain); everyone else gets 554 5.7.1. Never an open relay.
 */
import type { BlockList } from 'node:net';
import type { ConfigSnapshot, DomainConfig, PolicyConfig } from '../common/config/resolved.ts';
import { inNetworks, networkList } from '../common/networks.ts';
import { checkMailbox, domainOf } from './address-syntax.ts';
import { REPLIES, type SmtpReply } from './replies.ts';

/** What the session knows about its client. */
export interface ClientIdentity {
  /** Remote IP address (IPv4, IPv6 or IPv4-mapped IPv6). */
  address: string;
  /** Authenticated user name, if any. */
  user?: string;
  /** Keys of the policies whose user list verified the password at AUTH. */
  authPolicies?: string[];
  /**
   * Key of the one policy an HTTP API key is bound to (services/api): the client is that policy's client and no
   * other's, whatever its address, so an API key never gains what another policy's networks would allow.
   */
  apiPolicy?: string;
  tls: boolean;
}

export interface RecipientRequest {
  recipient: string;
  /** Envelope sender, '' for `<>`. */
  sender: string;
  client: ClientIdentity;
  snapshot: ConfigSnapshot;
  /** Recipients already accepted in this transaction. */
  acceptedSoFar: number;
}

export type RecipientDecision =
  | { accept: true; kind: 'inbound'; domain: string }
  | { accept: true; kind: 'relay'; policy: string }
  | { accept: false; reply: SmtpReply; reason: string };

const blockLists = new WeakMap<PolicyConfig, BlockList>();

/** The policy's networks as a BlockList; snapshots are replaced, never mutated, so caching per object is safe. */
function networksOf(policy: PolicyConfig): BlockList {
  let list = blockLists.get(policy);
  if (!list) {
    // validate.ts refuses bad CIDRs before they reach KV; networkList skips them, never widens.
    list = networkList(policy.networks);
    blockLists.set(policy, list);
  }
  return list;
}

/** True when the client is one of the policy's clients: in a listed network or authenticated against it. */
export function clientMatches(key: string, policy: PolicyConfig, client: ClientIdentity): boolean {
  if (client.apiPolicy !== undefined) return key === client.apiPolicy;
  if (inNetworks(networksOf(policy), client.address)) return true;
  return (
    client.user !== undefined &&
    (client.authPolicies ?? []).includes(key) &&
    policy.users.some((u) => u.name === client.user)
  );
}

/** Policies sorted by key, so "first match" is deterministic across replicas. */
function sortedPolicies(snapshot: ConfigSnapshot): [string, PolicyConfig][] {
  return [...snapshot.policies.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The first policy (by key) the client belongs to: its limits apply to the client's messages. */
export function clientPolicy(
  client: ClientIdentity,
  snapshot: ConfigSnapshot,
): { key: string; policy: PolicyConfig } | undefined {
  for (const [key, policy] of sortedPolicies(snapshot)) {
    if (clientMatches(key, policy, client)) return { key, policy };
  }
  return undefined;
}

/** Effective size limit: the global maximum, lowered by the client's policy. */
export function sizeLimitFor(client: ClientIdentity, snapshot: ConfigSnapshot, globalMax: number): number {
  const own = clientPolicy(client, snapshot)?.policy.limits.messageSize;
  return own !== undefined && own > 0 ? Math.min(own, globalMax) : globalMax;
}

/**
 * The client's messages-per-minute limit (its policy's `limits.messagesPerMinute`), counted per client across
 * every ingress replica by client-rate.ts once a recipient is accepted; undefined = not limited.
 */
export function messageRateLimit(client: ClientIdentity, snapshot: ConfigSnapshot): number | undefined {
  return clientPolicy(client, snapshot)?.policy.limits.messagesPerMinute;
}

function senderAllowed(policy: PolicyConfig, sender: string): boolean {
  if (!policy.senderDomains) return true;
  // A null sender has no domain to check; a policy that restricts senders does not relay bounces.
  const domain = domainOf(sender);
  if (!domain) return false;
  return policy.senderDomains.some((d) => {
    const allowed = d.toLowerCase();
    return allowed.startsWith('*.') ? domain.endsWith(allowed.slice(1)) : domain === allowed;
  });
}

/** `*` matches any run of characters; everything else is literal. */
function globMatches(pattern: string, text: string): boolean {
  const re = pattern
    .split('*')
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${re}$`, 'u').test(text);
}

/**
 * Inbound domain whose recipient list (if any) admits the address. `postmaster` is always admitted: RFC 5321
 * §4.5.1 requires every domain a server provides mail service for to accept mail for its postmaster.
 */
function inboundAccepts(domain: DomainConfig, local: string, address: string): boolean {
  const list = domain.inbound?.recipients;
  if (!list || local === 'postmaster') return true;
  return list.some((entry) => {
    const p = entry.toLowerCase();
    return p.includes('@') ? globMatches(p, address) : globMatches(p, local);
  });
}

function inboundDomain(snapshot: ConfigSnapshot, domain: string): DomainConfig | undefined {
  const d = snapshot.domains.get(domain);
  return d?.inbound && d.inbound.enabled !== false ? d : undefined;
}

const refuse = (reply: SmtpReply, reason: string): RecipientDecision => ({ accept: false, reply, reason });

/**
 * Decides one RCPT TO. Order: syntax → recipients per message → inbound domain → relay policy → deny. The
 * message rate is judged after an accepting decision (smtp-listener.ts), so refused recipients cost no counter.
 */
export function decideRecipient(req: RecipientRequest): RecipientDecision {
  const syntax = checkMailbox(req.recipient);
  if (!syntax.ok) return refuse(REPLIES.badRecipient, syntax.reason);
  const own = clientPolicy(req.client, req.snapshot)?.policy.limits;
  if (own?.recipientsPerMessage !== undefined && req.acceptedSoFar >= own.recipientsPerMessage) {
    return refuse(REPLIES.tooManyRecipients, 'recipientsPerMessage');
  }

  const address = `${syntax.local.toLowerCase()}@${syntax.domain}`;
  const inbound = inboundDomain(req.snapshot, syntax.domain);
  if (inbound) {
    return inboundAccepts(inbound, syntax.local.toLowerCase(), address)
      ? { accept: true, kind: 'inbound', domain: syntax.domain }
      : refuse(REPLIES.unknownUser, 'unknown user');
  }

  let reason = 'client not allowed to relay';
  for (const [key, policy] of sortedPolicies(req.snapshot)) {
    if (!clientMatches(key, policy, req.client)) continue;
    if (policy.requireTLS && !req.client.tls) {
      reason = 'policy requires TLS';
      continue;
    }
    if (!senderAllowed(policy, req.sender)) {
      reason = 'sender domain not allowed';
      continue;
    }
    return { accept: true, kind: 'relay', policy: key };
  }
  return refuse(REPLIES.relayDenied, reason);
}

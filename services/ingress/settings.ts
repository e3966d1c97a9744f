/** Ingress settings from the environment (local mode and the chart set these; see docs/ingress.md). */

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isCidr } from '../common/config/validate.ts';
import { readDnsServers } from '../common/dns-resolver.ts';
import { DEFAULT_ATTACH_MAX, directRoutingEnabled } from '../common/submit.ts';
import {
  type ContentFilterSettings,
  type DnsblSettings,
  readContentFilterSettings,
  readDnsblSettings,
} from './filter-settings.ts';

export type ListenerMode = 'relay' | 'submission' | 'smtps';

export interface ListenerSettings {
  /** Metric label and log field. */
  name: string;
  host: string;
  port: number;
  /** relay: MX / relay port (AUTH optional); submission: AUTH required; smtps: implicit TLS + AUTH required. */
  mode: ListenerMode;
  /** Allow AUTH without TLS (local testing only). */
  insecureAuth?: boolean;
  /**
   * Expect a PROXY protocol header (v1 or v2) on every connection, from a peer in the trusted networks
   * (`IngressSettings.proxyProtocol`); anything else is closed before the banner.
   */
  proxyProtocol?: boolean;
  /** Check DNS block lists at connect (when zones are configured); default: on for relay listeners only. */
  dnsbl?: boolean;
  /** Scan messages with the content filter (when configured); default: on for every listener. */
  contentFilter?: boolean;
}

export interface IngressSettings {
  listeners: ListenerSettings[];
  /** PEM certificate chain and key: STARTTLS is offered when set, smtps listeners need it. */
  tls?: { cert: Buffer; key: Buffer };
  /** Name in the banner and the Received header. */
  hostname: string;
  /** Where `RCPT TO:<postmaster>` (no domain) goes: RFC 5321 §4.5.1 says it MUST be accepted. */
  postmaster?: string;
  /** Global message size limit in bytes (RFC 1870 SIZE). */
  maxMessageSize: number;
  /** How long to wait for a JetStream PubAck before answering 451. */
  publishTimeoutMs: number;
  /** Bodies up to this many bytes travel inline in the Envelope; larger ones go to the object store. */
  inlineBodyMax: number;
  /**
   * Route the common case at receipt and publish its job straight to delivery (services/common/submit.ts, the
   * lean path); `POSTERN_DIRECT_ROUTING=0` turns it off. Absent: on.
   */
  directRouting?: boolean;
  /** Largest body a direct job carries attached (`POSTERN_ATTACH_MAX`, default 256 KiB; services/common/body-wire.ts). */
  attachMax?: number;
  /**
   * SO_REUSEPORT on the listeners, so several ingress processes on one host share a port and the kernel spreads
   * connections across them (local mode with --ingress N; in a cluster each pod has its own address).
   */
  reusePort: boolean;
  /** How long the cluster-wide client rate counters may take before this replica's own window decides. */
  rateLimitTimeoutMs?: number;
  /** RFC 8601 authserv-id of our Authentication-Results header (POSTERN_AUTHSERV_ID, default the hostname). */
  authservId?: string;
  /** Bound on the DNS work of one message's sender authentication (POSTERN_SENDER_AUTH_TIMEOUT_MS). */
  senderAuthTimeoutMs?: number;
  /** DNS servers for every lookup (POSTERN_DNS_SERVERS); empty = the system resolver. */
  dnsServers?: string[];
  /** Abuse limits (docs/ingress.md "Abuse limits"); every field has a Postfix-like default. */
  limits?: Partial<AbuseLimits>;
  /** Who may send PROXY headers to listeners with `proxyProtocol`, and how long a header may take. */
  proxyProtocol?: ProxyProtocolSettings;
  /** DNS block lists (docs/ingress.md "DNS block lists"); absent = off. */
  dnsbl?: DnsblSettings;
  /** rspamd content filter at end of DATA (docs/ingress.md "Content filter"); absent = off. */
  contentFilter?: ContentFilterSettings;
}

export interface ProxyProtocolSettings {
  /** CIDRs of the load balancers; a listener with proxyProtocol needs at least one. */
  trustedNetworks: string[];
  /** The whole header must arrive within this after connect (Postfix smtpd_upstream_proxy_timeout). */
  headerTimeoutMs: number;
}

export const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 5000;

/** POSTERN_PROXY_TRUSTED_NETWORKS (comma- or space-separated CIDRs) and POSTERN_PROXY_HEADER_TIMEOUT_MS. */
export function readProxyProtocol(env: NodeJS.ProcessEnv = process.env): ProxyProtocolSettings {
  const trustedNetworks = (env['POSTERN_PROXY_TRUSTED_NETWORKS'] ?? '').split(/[\s,]+/).filter(Boolean);
  for (const n of trustedNetworks) {
    if (!isCidr(n)) throw new Error(`POSTERN_PROXY_TRUSTED_NETWORKS: "${n}" is not a CIDR (e.g. 10.0.0.0/8)`);
  }
  return {
    trustedNetworks,
    headerTimeoutMs: positiveInt(env, 'POSTERN_PROXY_HEADER_TIMEOUT_MS', DEFAULT_PROXY_HEADER_TIMEOUT_MS),
  };
}

/** A PROXY header is believed only from listed balancers: a listener asking for it without any is an error. */
export function checkProxyListeners(settings: Pick<IngressSettings, 'listeners' | 'proxyProtocol'>): void {
  const behind = settings.listeners.filter((l) => l.proxyProtocol).map((l) => l.name);
  if (behind.length > 0 && !settings.proxyProtocol?.trustedNetworks.length) {
    throw new Error(
      `listener ${behind.join(', ')} has proxyProtocol but POSTERN_PROXY_TRUSTED_NETWORKS lists no load balancer network`,
    );
  }
}

/** Session and connection limits against hostile clients, each modelled on a Postfix smtpd/anvil parameter. */
export interface AbuseLimits {
  /** Open connections per ingress process, all listeners together (Postfix default_process_limit). */
  maxConnections: number;
  /** Open connections per client IP per ingress process (smtpd_client_connection_count_limit). */
  maxConnectionsPerIp: number;
  /**
   * New connections per client IP per minute, all replicas together (smtpd_client_connection_rate_limit);
   * 0 = off. Clients in a RelayPolicy network are exempt.
   */
  connectionRateLimit: number;
  /** No byte from a client that owes us input for this long → 421 (smtpd_timeout). */
  idleTimeoutMs: number;
  /** A whole command line must arrive within this after the previous reply; bytes do not extend it. */
  commandTimeoutMs: number;
  /** Whole-session deadline, whatever the client does (slowloris over DATA). */
  sessionTimeoutMs: number;
  /** Error replies (4xx/5xx) in one session before 421 (smtpd_hard_error_limit). */
  hardErrorLimit: number;
  /** NOOP/VRFY/EXPN/RSET/HELP/ETRN from an unauthenticated client before 421 (smtpd_junk_command_limit). */
  junkCommandLimit: number;
  /** Commands before AUTH on listeners that require it (submission, smtps). */
  unauthenticatedCommandLimit: number;
  /** Recipients per message, whatever the policy (smtpd_recipient_limit); RFC 5321 §4.5.3.1.8 asks ≥ 100. */
  maxRecipients: number;
  /** Failed AUTHs per client IP per lockout window, across every replica. */
  authFailuresPerIp: number;
  /** Failed AUTHs per user name per lockout window, across every replica. */
  authFailuresPerUser: number;
  /** Lockout window (seconds): a key over its limit is refused for the rest of this window and the next. */
  authLockoutSeconds: number;
  /** How long the cluster-wide AUTH failure counters may take before this replica's own count decides. */
  authCounterTimeoutMs: number;
}

export const DEFAULT_LIMITS: AbuseLimits = {
  maxConnections: 1000,
  maxConnectionsPerIp: 50,
  connectionRateLimit: 0,
  idleTimeoutMs: 300_000,
  commandTimeoutMs: 300_000,
  sessionTimeoutMs: 3_600_000,
  hardErrorLimit: 20,
  junkCommandLimit: 100,
  unauthenticatedCommandLimit: 20,
  maxRecipients: 1000,
  authFailuresPerIp: 10,
  authFailuresPerUser: 20,
  authLockoutSeconds: 900,
  authCounterTimeoutMs: 500,
};

/** The AUTH_FAILURES stream keeps counters 25 h (services/common/nats.ts): two windows must fit. */
export const MAX_AUTH_LOCKOUT_SECONDS = 43_200;

/** Environment variable per limit (the chart renders `ingress.limits.*` into these). */
export const LIMIT_ENV: Record<keyof AbuseLimits, string> = {
  maxConnections: 'POSTERN_SMTP_MAX_CONNECTIONS',
  maxConnectionsPerIp: 'POSTERN_SMTP_MAX_CONNECTIONS_PER_IP',
  connectionRateLimit: 'POSTERN_SMTP_CONNECTION_RATE_LIMIT',
  idleTimeoutMs: 'POSTERN_SMTP_IDLE_TIMEOUT_MS',
  commandTimeoutMs: 'POSTERN_SMTP_COMMAND_TIMEOUT_MS',
  sessionTimeoutMs: 'POSTERN_SMTP_SESSION_TIMEOUT_MS',
  hardErrorLimit: 'POSTERN_SMTP_HARD_ERROR_LIMIT',
  junkCommandLimit: 'POSTERN_SMTP_JUNK_COMMAND_LIMIT',
  unauthenticatedCommandLimit: 'POSTERN_SMTP_UNAUTH_COMMAND_LIMIT',
  maxRecipients: 'POSTERN_SMTP_MAX_RECIPIENTS',
  authFailuresPerIp: 'POSTERN_AUTH_FAILURES_PER_IP',
  authFailuresPerUser: 'POSTERN_AUTH_FAILURES_PER_USER',
  authLockoutSeconds: 'POSTERN_AUTH_LOCKOUT_SECONDS',
  authCounterTimeoutMs: 'POSTERN_AUTH_COUNTER_TIMEOUT_MS',
};

/** Limits where 0 means off (Postfix's convention for the anvil rate limits). */
const OFF_AT_ZERO = new Set<keyof AbuseLimits>(['connectionRateLimit']);

/** The limits from the environment, defaults filled in; throws naming the bad variable. */
export function readAbuseLimits(env: NodeJS.ProcessEnv = process.env): AbuseLimits {
  const limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(LIMIT_ENV) as (keyof AbuseLimits)[]) {
    limits[key] = OFF_AT_ZERO.has(key)
      ? positiveInt(env, LIMIT_ENV[key], DEFAULT_LIMITS[key], 0)
      : positiveInt(env, LIMIT_ENV[key], DEFAULT_LIMITS[key]);
  }
  if (limits.authLockoutSeconds > MAX_AUTH_LOCKOUT_SECONDS) {
    throw new Error(`${LIMIT_ENV.authLockoutSeconds} must be at most ${MAX_AUTH_LOCKOUT_SECONDS}`);
  }
  return limits;
}

export const DEFAULT_LISTENERS: ListenerSettings[] = [
  { name: 'mx', host: '127.0.0.1', port: 2525, mode: 'relay' },
  { name: 'submission', host: '127.0.0.1', port: 2587, mode: 'submission' },
];

const MODES: ListenerMode[] = ['relay', 'submission', 'smtps'];

function parseListeners(text: string): ListenerSettings[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`POSTERN_INGRESS_LISTENERS is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(raw) || raw.length === 0)
    throw new Error('POSTERN_INGRESS_LISTENERS must be a non-empty array');
  return raw.map((l: Partial<ListenerSettings>, i) => {
    if (!l || typeof l.name !== 'string' || typeof l.host !== 'string' || !Number.isInteger(l.port)) {
      throw new Error(`POSTERN_INGRESS_LISTENERS[${i}] needs name, host and an integer port`);
    }
    if (!MODES.includes(l.mode as ListenerMode)) {
      throw new Error(`POSTERN_INGRESS_LISTENERS[${i}].mode must be one of ${MODES.join(', ')}`);
    }
    return {
      name: l.name,
      host: l.host,
      port: l.port as number,
      mode: l.mode as ListenerMode,
      insecureAuth: l.insecureAuth === true,
      proxyProtocol: l.proxyProtocol === true,
      ...(typeof l.dnsbl === 'boolean' ? { dnsbl: l.dnsbl } : {}),
      ...(typeof l.contentFilter === 'boolean' ? { contentFilter: l.contentFilter } : {}),
    };
  });
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`${name} must be ${min === 0 ? 'a non-negative' : 'a positive'} integer, got "${text}"`);
  }
  return n;
}

/** Reads and validates the ingress settings; throws a clear error naming the bad variable. */
export function readIngressSettings(env: NodeJS.ProcessEnv = process.env): IngressSettings {
  const certPath = env['POSTERN_TLS_CERT'];
  const keyPath = env['POSTERN_TLS_KEY'];
  if (Boolean(certPath) !== Boolean(keyPath))
    throw new Error('set both POSTERN_TLS_CERT and POSTERN_TLS_KEY, or neither');
  const settings: IngressSettings = {
    listeners: env['POSTERN_INGRESS_LISTENERS']
      ? parseListeners(env['POSTERN_INGRESS_LISTENERS'])
      : DEFAULT_LISTENERS,
    hostname: env['POSTERN_HOSTNAME'] || hostname(),
    postmaster: env['POSTERN_POSTMASTER'] || `postmaster@${env['POSTERN_HOSTNAME'] || hostname()}`,
    maxMessageSize: positiveInt(env, 'POSTERN_MAX_MESSAGE_SIZE', 25 * 1024 * 1024),
    publishTimeoutMs: positiveInt(env, 'POSTERN_PUBLISH_TIMEOUT_MS', 5000),
    inlineBodyMax: positiveInt(env, 'POSTERN_INLINE_BODY_MAX', 16 * 1024),
    directRouting: directRoutingEnabled(env),
    attachMax: positiveInt(env, 'POSTERN_ATTACH_MAX', DEFAULT_ATTACH_MAX, 0),
    reusePort: env['POSTERN_REUSE_PORT'] === 'true',
    rateLimitTimeoutMs: positiveInt(env, 'POSTERN_RATE_LIMIT_TIMEOUT_MS', 500),
    limits: readAbuseLimits(env),
    proxyProtocol: readProxyProtocol(env),
    authservId: env['POSTERN_AUTHSERV_ID'] || env['POSTERN_HOSTNAME'] || hostname(),
    senderAuthTimeoutMs: positiveInt(env, 'POSTERN_SENDER_AUTH_TIMEOUT_MS', 20_000),
    dnsServers: readDnsServers(env),
  };
  const dnsbl = readDnsblSettings(env);
  if (dnsbl) settings.dnsbl = dnsbl;
  const contentFilter = readContentFilterSettings(env);
  if (contentFilter) settings.contentFilter = contentFilter;
  checkProxyListeners(settings);
  if (certPath && keyPath) settings.tls = { cert: readFileSync(certPath), key: readFileSync(keyPath) };
  return settings;
}

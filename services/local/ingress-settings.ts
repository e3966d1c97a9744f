/**
 * Local mode's counterpart of the chart's `ingress.dnsbl` / `ingress.contentFilter` values: an
 * `IngressSettings` document in the config file (not a Kubernetes resource; it never reaches the KV bucket),
 * turned into the same environment the chart renders for the ingress processes. Read at `postern local`
 * start; `postern apply` ignores it (the ingress reads these settings once, at start).
 */
import { parseAllDocuments } from 'yaml';
import { readContentFilterSettings, readDnsblSettings } from '../ingress/filter-settings.ts';

export const INGRESS_SETTINGS_KIND = 'IngressSettings';

/** Local mode's two listeners (local-mode.ts), each switchable like the chart's `ingress.listeners.*`. */
export type LocalListener = 'mx' | 'submission';

export interface IngressSettingsDoc {
  kind: typeof INGRESS_SETTINGS_KIND;
  dnsbl?: {
    zones?: (string | { zone: string; codes?: string[] })[];
    allow?: string[];
    cacheTtlSeconds?: number;
    cacheSize?: number;
    timeoutMs?: number;
  };
  contentFilter?: { url?: string; timeoutMs?: number; failMode?: string; maxSize?: number };
  listeners?: Partial<Record<LocalListener, { dnsbl?: boolean; contentFilter?: boolean }>>;
}

export interface LocalIngressSettings {
  /** Environment for every ingress process. */
  env: Record<string, string>;
  /** Per-listener switches, merged into POSTERN_INGRESS_LISTENERS. */
  listeners: Partial<Record<LocalListener, { dnsbl?: boolean; contentFilter?: boolean }>>;
}

const KEYS: Record<string, string[]> = {
  '': ['kind', 'apiVersion', 'metadata', 'dnsbl', 'contentFilter', 'listeners'],
  dnsbl: ['zones', 'allow', 'cacheTtlSeconds', 'cacheSize', 'timeoutMs'],
  contentFilter: ['url', 'timeoutMs', 'failMode', 'maxSize'],
  listeners: ['mx', 'submission'],
};

function unknownKeys(where: string, value: unknown): string[] {
  if (value === undefined) return [];
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return [`${where || 'document'}: must be a mapping`];
  return Object.keys(value)
    .filter((k) => !(KEYS[where] ?? []).includes(k))
    .map((k) => `unknown field ${where ? `${where}.` : ''}${k}`);
}

/** The environment and switches one document asks for; throws listing every problem. */
export function ingressSettingsOf(doc: IngressSettingsDoc): LocalIngressSettings {
  const problems = [
    ...unknownKeys('', doc),
    ...unknownKeys('dnsbl', doc.dnsbl),
    ...unknownKeys('contentFilter', doc.contentFilter),
    ...unknownKeys('listeners', doc.listeners),
  ];
  const env: Record<string, string> = {};
  const d = doc.dnsbl;
  if (d?.zones?.length) {
    env['POSTERN_DNSBL_ZONES'] = JSON.stringify(d.zones);
    if (d.allow?.length) env['POSTERN_DNSBL_ALLOW'] = d.allow.join(',');
    if (d.cacheTtlSeconds !== undefined) env['POSTERN_DNSBL_CACHE_TTL_SECONDS'] = String(d.cacheTtlSeconds);
    if (d.cacheSize !== undefined) env['POSTERN_DNSBL_CACHE_SIZE'] = String(d.cacheSize);
    if (d.timeoutMs !== undefined) env['POSTERN_DNSBL_TIMEOUT_MS'] = String(d.timeoutMs);
  }
  const c = doc.contentFilter;
  if (c?.url) {
    env['POSTERN_CONTENT_FILTER_URL'] = c.url;
    if (c.failMode !== undefined) env['POSTERN_CONTENT_FILTER_FAIL_MODE'] = c.failMode;
    if (c.timeoutMs !== undefined) env['POSTERN_CONTENT_FILTER_TIMEOUT_MS'] = String(c.timeoutMs);
    if (c.maxSize !== undefined) env['POSTERN_CONTENT_FILTER_MAX_SIZE'] = String(c.maxSize);
  }
  // The ingress' own readers judge the values, so local mode refuses exactly what the service would.
  for (const read of [readDnsblSettings, readContentFilterSettings]) {
    try {
      read(env);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length) throw new Error(problems.join('; '));
  return { env, listeners: doc.listeners ?? {} };
}

/** The settings of the file's IngressSettings document (at most one), or none. */
export function localIngressSettings(text: string): LocalIngressSettings {
  const docs = parseAllDocuments(text)
    .map((d) => d.toJS() as { kind?: string } | null)
    .filter((d): d is IngressSettingsDoc => d?.kind === INGRESS_SETTINGS_KIND);
  if (docs.length > 1) throw new Error(`at most one ${INGRESS_SETTINGS_KIND} document`);
  return docs[0] ? ingressSettingsOf(docs[0]) : { env: {}, listeners: {} };
}

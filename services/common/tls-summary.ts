/** One line describing a session's TLS (TlsFacts), for DSNs, logs and `postern queue show`. */
import type { TlsFacts } from './types.ts';

/**
 * e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384, certificate verified, policy verify" or
 * "no TLS (starttls-not-supported), policy required".
 */
export function tlsSummary(t: TlsFacts): string {
  const policy = t.applied === t.policy ? `policy ${t.policy}` : `policy ${t.policy} (applied ${t.applied})`;
  const failure = t.failure ? ` (${t.failure})` : '';
  if (!t.version) return `no TLS${failure}, ${policy}`;
  const cert = t.verified ? 'certificate verified' : `certificate not verified${failure}`;
  return `${t.version}${t.cipher ? ` ${t.cipher}` : ''}, ${cert}, ${policy}`;
}

/**
 * One webhook request: POST the event JSON with its id, timestamp and signature headers, within the endpoint's
 * timeout. Redirects are not followed (a 3xx is a failure: the signed request must reach the configured URL,
 * and a redirect is usually a misconfigured endpoint). The response body is not read.
 */
import type { WebhookConfig } from '../common/config/webhook.ts';
import type { AttemptResult } from './decision.ts';
import { HEADERS, sign } from './signature.ts';

export interface SendOutcome {
  result: AttemptResult;
  /** HTTP status, when a response arrived. */
  status?: number;
  /** Why it failed, for logs and the dead letter. */
  detail?: string;
}

export async function sendEvent(
  cfg: Pick<WebhookConfig, 'url' | 'secret' | 'timeoutMs'>,
  event: { id: string; type: string; attempt: number },
  body: string,
): Promise<SendOutcome> {
  const timestamp = Math.floor(Date.now() / 1000);
  let res: Response;
  try {
    res = await fetch(cfg.url, {
      method: 'POST',
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(cfg.timeoutMs),
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Postern-Webhooks/1',
        [HEADERS.id]: event.id,
        [HEADERS.type]: event.type,
        [HEADERS.timestamp]: String(timestamp),
        [HEADERS.signature]: sign(cfg.secret, timestamp, body),
        [HEADERS.attempt]: String(event.attempt),
      },
    });
  } catch (err) {
    const e = err as Error & { cause?: Error };
    if (e.name === 'TimeoutError')
      return { result: 'timeout', detail: `no response within ${cfg.timeoutMs} ms` };
    return { result: 'error', detail: e.cause?.message ?? e.message };
  }
  // Free the connection for reuse without reading a body nobody looks at. cancel() rejects only when the body
  // stream already failed, which changes nothing about the status we got.
  await res.body?.cancel().catch((err: Error) => err);
  if (res.status >= 200 && res.status < 300) return { result: 'delivered', status: res.status };
  return { result: 'failed', status: res.status, detail: `HTTP ${res.status}` };
}

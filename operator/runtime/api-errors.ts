/**
 * Readable Kubernetes API errors. client-node 2.x throws `ApiException` whose message is
 * "HTTP-Code: 403\nMessage: Unknown API Status Code!\nBody: \"{\\\"kind\\\":\\\"Status\\\"…}\"\nHeaders: …" for
 * every status its OpenAPI description does not list (403, 409, 422…): the useful part — the Status object's
 * reason and message — is buried in escaped JSON. This turns it back into "403 Forbidden: secrets is forbidden: …".
 */

interface StatusBody {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

/** The Kubernetes Status carried by an ApiException (its body is a JSON string or an object), if any. */
export function apiStatus(err: unknown): (StatusBody & { code: number }) | undefined {
  const e = err as { code?: unknown; body?: unknown } | null;
  if (!e || typeof e.code !== 'number' || e.code < 100 || e.code > 599) return undefined;
  let body: StatusBody = {};
  if (typeof e.body === 'string') {
    try {
      body = JSON.parse(e.body) as StatusBody;
    } catch {
      body = { message: e.body };
    }
  } else if (e.body && typeof e.body === 'object') body = e.body as StatusBody;
  return { ...body, code: e.code };
}

/** One line for logs: `<code> <reason>: <message>` for API errors, the error's message otherwise. */
export function describeError(err: unknown): string {
  const s = apiStatus(err);
  if (s) return [`${s.code}${s.reason ? ` ${s.reason}` : ''}`, s.message].filter(Boolean).join(': ');
  return err instanceof Error ? err.message : String(err);
}

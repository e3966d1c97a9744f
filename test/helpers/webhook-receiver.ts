/**
 * A real HTTP webhook receiver on loopback (node:http): records every request (headers, body, the status it
 * answered) and answers as `respond` decides per request — 200, 500, or hang (never answer, so the sender's
 * timeout fires). Hanging requests are released and every socket destroyed on close.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ReceivedWebhook {
  id: string;
  type: string;
  attempt: number;
  timestamp: string;
  signature: string;
  body: string;
  /** What the receiver answered: an HTTP status, or 'hang'. */
  answered: number | 'hang';
}

export type Respond = (req: { id: string; attempt: number; seenBefore: number }) => number | 'hang';

export interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  respond: Respond;
  /** Ids answered with a 2xx, with how many times each. */
  accepted(): Map<string, number>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(respond: Respond = () => 200): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const hanging = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const r: WebhookReceiver = {
    url: '',
    received,
    respond,
    accepted() {
      const m = new Map<string, number>();
      for (const w of received)
        if (typeof w.answered === 'number' && w.answered < 300) m.set(w.id, (m.get(w.id) ?? 0) + 1);
      return m;
    },
    async close() {
      for (const res of hanging) res.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const id = String(req.headers['postern-event-id']);
      const attempt = Number(req.headers['postern-attempt']);
      const seenBefore = received.filter((w) => w.id === id).length;
      const answer = r.respond({ id, attempt, seenBefore });
      received.push({
        id,
        type: String(req.headers['postern-event-type']),
        attempt,
        timestamp: String(req.headers['postern-timestamp']),
        signature: String(req.headers['postern-signature']),
        body: Buffer.concat(chunks).toString('utf8'),
        answered: answer,
      });
      if (answer === 'hang') {
        hanging.add(res);
        return;
      }
      res.statusCode = answer;
      res.end(answer < 300 ? 'ok' : 'failing');
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  r.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hooks`;
  return r;
}

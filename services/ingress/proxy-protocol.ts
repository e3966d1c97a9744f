/**
 * PROXY protocol (v1 and v2) in front of smtp-server, for listeners behind a TCP load balancer.
 *
 * smtp-server's `useProxy` reads v1 only, and from any peer it is told to trust. So this module takes the
 * listener's connections first: a peer outside the trusted balancer networks, a header that is malformed,
 * truncated, oversized, of a family SMTP cannot use, or not complete within the header timeout, gets the
 * connection closed — no banner, no SMTP — with a log line and `postern_proxy_refusals_total{reason}`. A good
 * header (parsed by proxy-header.ts) is handed to smtp-server re-written as the v1 line its own `useProxy`
 * parser reads, followed by every byte that came after it; smtp-server then sets the session's `remoteAddress`
 * (hence `clientHostname`, relay rules, limits, Received, logs) from it, and implicit TLS (smtps) still starts
 * after the header as usual. Only public smtp-server behaviour is relied on: the `useProxy` option and the
 * 'connection' listener its constructor puts on its net.Server (`server.server`).
 */
import type { BlockList, Server, Socket } from 'node:net';
import type { SMTPServer } from 'smtp-server';
import { inNetworks } from '../common/networks.ts';
import type { Logger } from '../common/telemetry.ts';
import { type HeaderFault, type ProxyHeader, parseProxyHeader, TLV } from './proxy-header.ts';

/** Why a connection was closed before SMTP (metric label). */
export type ProxyRefusal = HeaderFault | 'untrusted-peer' | 'timeout' | 'closed';

export interface ProxyProtocolOptions {
  /** Balancers allowed to send a header; every other peer is closed at once. */
  trusted: BlockList;
  /** The whole header must arrive within this (Postfix smtpd_upstream_proxy_timeout, 5 s). */
  headerTimeoutMs: number;
  log: Logger;
  accepted(header: ProxyHeader): void;
  refused(reason: ProxyRefusal): void;
}

/** The v1 line smtp-server's useProxy parser reads: the client's endpoints, or UNKNOWN = the socket's own. */
function asV1(header: ProxyHeader): Buffer {
  if (header.command === 'local') return Buffer.from('PROXY UNKNOWN\r\n');
  const { family, source: s, destination: d } = header;
  return Buffer.from(`PROXY ${family.toUpperCase()} ${s.address} ${d.address} ${s.port} ${d.port}\r\n`);
}

/** Log fields of the TLVs worth a line (HAProxy's unique-id and authority); the rest are only counted. */
function tlvFields(header: ProxyHeader): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const t of header.tlvs) {
    if (t.type === TLV.uniqueId) fields['proxyId'] = t.value.toString('latin1');
    else if (t.type === TLV.authority) fields['authority'] = t.value.toString('latin1');
  }
  if (header.tlvs.length > 0) fields['tlvs'] = header.tlvs.length;
  return fields;
}

/**
 * Reads one header off the socket. Calls `done` once: with the header and the bytes after it, or with a
 * refusal (the socket is then already destroyed).
 */
function readHeader(
  socket: Socket,
  timeoutMs: number,
  done: (result: { header: ProxyHeader; rest: Buffer } | { refusal: ProxyRefusal; detail: string }) => void,
): void {
  let received: Buffer = Buffer.alloc(0);
  let finished = false;
  const finish = (result: Parameters<typeof done>[0]) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('end', onEnd);
    socket.off('close', onEnd);
    if ('refusal' in result) {
      // Our 'error' listener stays: a late ECONNRESET on a destroyed socket must not become an uncaught error.
      socket.destroy();
    } else {
      socket.off('error', onError);
    }
    done(result);
  };
  const onReadable = () => {
    for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const r = parseProxyHeader(received);
      if (r.kind === 'incomplete') continue;
      if (r.kind === 'invalid') return finish({ refusal: r.fault, detail: r.detail });
      return finish({ header: r.header, rest: received.subarray(r.length) });
    }
  };
  const onEnd = () => finish({ refusal: 'closed', detail: `closed after ${received.length} bytes` });
  const onError = (err: Error) => finish({ refusal: 'closed', detail: err.message });
  const timer = setTimeout(
    () => finish({ refusal: 'timeout', detail: `${received.length} bytes in ${timeoutMs} ms` }),
    timeoutMs,
  );
  socket.on('readable', onReadable);
  socket.on('end', onEnd);
  socket.on('close', onEnd);
  socket.on('error', onError);
}

/**
 * Puts the PROXY protocol in front of an smtp-server created with `useProxy: true`; call before listen().
 * Throws when the library no longer has the single connection listener this relies on.
 */
export function installProxyProtocol(server: SMTPServer, opts: ProxyProtocolOptions): void {
  const net = (server as unknown as { server: Server }).server;
  const listeners = net.listeners('connection') as ((socket: Socket) => void)[];
  const [handOver] = listeners;
  if (listeners.length !== 1 || !handOver) {
    throw new Error('smtp-server has changed: expected exactly one connection listener on its net.Server');
  }
  net.removeListener('connection', handOver);
  /** Sockets still owing their header: closed at once when the server closes. */
  const pending = new Set<Socket>();

  net.on('connection', (socket: Socket) => {
    const peer = socket.remoteAddress ?? '';
    const log = opts.log.child({ peer });
    socket.on('error', (err) => log.debug({ err: err.message }, 'socket error before SMTP'));
    if (!inNetworks(opts.trusted, peer)) {
      // Never read a header from an untrusted peer: it could claim any address, and relay rules believe it.
      opts.refused('untrusted-peer');
      log.info('PROXY protocol listener: connection from outside the trusted networks closed');
      socket.destroy();
      return;
    }
    pending.add(socket);
    readHeader(socket, opts.headerTimeoutMs, (result) => {
      pending.delete(socket);
      if ('refusal' in result) {
        opts.refused(result.refusal);
        log.info(
          { reason: result.refusal, detail: result.detail },
          'PROXY header refused, connection closed',
        );
        return;
      }
      const { header, rest } = result;
      opts.accepted(header);
      log.debug(
        {
          version: header.version,
          command: header.command,
          ...(header.command === 'proxy' ? { client: header.source.address } : {}),
          ...tlvFields(header),
        },
        'PROXY header accepted',
      );
      socket.unshift(Buffer.concat([asV1(header), rest]));
      handOver(socket);
    });
  });

  const close = server.close.bind(server);
  server.close = (callback?: (err?: Error) => void) => {
    for (const socket of pending) socket.destroy();
    pending.clear();
    return close(callback);
  };
}

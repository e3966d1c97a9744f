/**
 * Free ports for servers that must be told their port before they start (etcd, kube-apiserver, Postfix's
 * smtp-sink, several sinks sharing one port on different 127.0.0.N addresses). A port the kernel hands out for
 * `listen(0)` comes from the ephemeral range, and between our check and the server's bind another process's
 * outgoing connection can take it as its source port. So we pick from below the ephemeral range, where the
 * kernel never assigns source ports, and check that it can be bound. Servers that can bind 0 themselves and
 * report the port should do that instead.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

function ephemeralStart(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const n = Number(low);
    return Number.isInteger(n) && n > 2048 ? n : 32768;
  } catch {
    return 32768;
  }
}

const canBind = (port: number, host: string) =>
  new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });

/** A TCP port that is free on `host` now and outside the ephemeral range (bounded number of tries). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const high = ephemeralStart();
  const low = Math.max(1024, high - 12_000);
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await canBind(port, host)) return port;
  }
  throw new Error(`no free port below ${high} on ${host} after 200 tries`);
}

/** Client networks (CIDR lists) and client addresses: one home for matching an address against a list. */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

/** Normalises `::ffff:10.0.0.1` (IPv4 on a dual-stack socket) to `10.0.0.1`. */
export function plainAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

/**
 * A BlockList of the CIDRs (a bare address is a /32 or /128). Entries that are not CIDRs are skipped, never
 * widened: callers validate their input first (config/validate.ts `isCidr`) and refuse it with a message.
 */
export function networkList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net = '', prefix] = cidr.split('/');
    const type = isIPv4(net) ? 'ipv4' : isIPv6(net) ? 'ipv6' : undefined;
    if (!type) continue;
    list.addSubnet(net, prefix === undefined ? (type === 'ipv4' ? 32 : 128) : Number(prefix), type);
  }
  return list;
}

/** True when the address (IPv4-mapped IPv6 included) lies in one of the list's networks. */
export function inNetworks(list: BlockList, address: string): boolean {
  const ip = plainAddress(address);
  const type = isIPv4(ip) ? 'ipv4' : isIPv6(ip) ? 'ipv6' : undefined;
  return type !== undefined && list.check(ip, type);
}

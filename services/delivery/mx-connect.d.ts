/** The part of mx-connect 2 (CommonJS, ships no types) that delivery uses; see node_modules/mx-connect/README.md. */
declare module 'mx-connect' {
  import type { Socket } from 'node:net';

  interface MxConnectOptions {
    target: string;
    port?: number;
    maxConnectTime?: number;
    localHostname?: string;
    ignoreMXHosts?: string[];
    mxLastError?: Error;
    dnsOptions?: {
      ignoreIPv6?: boolean;
      preferIPv6?: boolean;
      blockLocalAddresses?: boolean;
      blockReservedNetworks?: boolean;
      resolveRecords?: (domain: string, type: 'MX' | 'A' | 'AAAA' | 'TXT') => Promise<unknown[]>;
    };
    /** RFC 7672: TLSA lookup per MX host (records only when DNSSEC-authenticated — our resolver's job). */
    dane?: {
      enabled: boolean;
      resolveTlsa?: (name: string) => Promise<unknown[]>;
      /** RFC 7672 §2.2.2: skip the TLSA lookup for hosts in insecure zones; throwing = fail closed. */
      checkDnssecSecure?: (hostname: string) => Promise<{ secure: boolean }>;
      logger?: (entry: Record<string, unknown>) => void;
    };
  }

  interface MxConnection {
    socket: Socket;
    /** MX host name. */
    hostname: string;
    /** IP address connected to. */
    host: string;
    port: number;
    localAddress: string;
    localHostname: string;
    localPort: number;
    /** DANE: set when the host had usable TLSA records. */
    daneEnabled?: boolean;
    tlsaRecords?: { usage: number; selector: number; mtype: number; cert: Buffer }[] | null;
  }

  function mxConnect(options: MxConnectOptions): Promise<MxConnection>;
  export default mxConnect;
}

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
  }

  function mxConnect(options: MxConnectOptions): Promise<MxConnection>;
  export default mxConnect;
}

/** What every system under test (Postern, Postfix, Haraka) looks like to the bench runner. */

/** Where mail goes: the sink's healthy listener, and optionally a dead (4xx) destination. */
export interface Destinations {
  /** Healthy sink (smarthost / MX for healthy.bench). */
  healthy: { host: string; port: number };
  /** Dead destination for dead.bench (answers 451 at RCPT); same port, another loopback address. */
  dead: { host: string; port: number };
  /** DNS server (dnsmasq) answering MX for healthy.bench / dead.bench, when routing via MX. */
  dns?: { host: string; port: number };
}

/** A started system, ready to accept SMTP on `smtp`. */
export interface RunningSystem {
  /** Label used in tables, e.g. "postern", "postfix", "postern (mx, 4 delivery)". */
  label: string;
  smtp: { host: string; port: number };
  /** The system's NATS (Postern): the bench reads JetStream stream state before and after a run. */
  natsUrl?: string;
  /** Live processes and their role (e.g. "ingress", "delivery", "postfix:smtpd"), re-read each sample. */
  processes(): Map<number, string>;
  /** Stops everything it started; resolves when gone. Safe to call twice. */
  stop(): Promise<void>;
}

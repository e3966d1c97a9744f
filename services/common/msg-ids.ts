/**
 * Every Nats-Msg-Id Postern publishes, built in one place. JetStream drops a publish whose id it already stored
 * inside the stream's duplicate window (docs/architecture.md "Durability chain"), so a handler that runs again
 * after a crash must rebuild exactly the same ids for the same occurrence, and two different occurrences must
 * never share one. Each id therefore names its stage and everything that makes the occurrence unique (message,
 * job, attempt, sequence). Ids share one namespace per stream, so the stage prefixes keep them apart.
 */
export const msgIds = {
  /** An accepted message on SUBMIT: the message id itself (a retried ingress publish is stored once). */
  submission: (messageId: string) => messageId,
  /** A body stored out of line in BODIES. */
  body: (messageId: string) => `body.${messageId}`,
  /** A delivery job for one attempt, on OUTBOUND or as its message schedule. */
  job: (jobId: string, attempt: number) => `${jobId}.a${attempt}`,
  /** An operator's retry-now or release of a job: a new schedule each time it is asked for. */
  jobNow: (jobId: string, attempt: number, action: 'now' | 'release', atMs: number) =>
    `${jobId}.a${attempt}.${action}${atMs}`,
  /** A job re-scheduled by delivery to wait for its site; `seq` is the stream sequence of the copy that waited. */
  siteWait: (jobId: string, attempt: number, seq: number) => `wait.${jobId}.a${attempt}.s${seq}`,
  /** The result of one attempt on RESULTS. */
  result: (jobId: string, attempt: number) => `result.${jobId}.a${attempt}`,
  /**
   * A DSN (a new message on SUBMIT) generated for one job attempt (or `<message>.s` for suppression): failures,
   * or (RFC 3461) the attempt's delay warning or success notice, each its own message.
   */
  dsn: (jobId: string, attempt: number, notice: 'failure' | 'delay' | 'success' = 'failure') =>
    `dsn.${jobId}.${attempt}${notice === 'failure' ? '' : `.${notice}`}`,
  /** A message event on EVENTS; `occurrence` names what happened once (a job attempt, a message). */
  event: (kind: string, occurrence: string) => `ev.${kind}.${occurrence}`,
  /** A site event on EVENTS (suspended, resumed, throttled); `at` is when the change takes or took effect. */
  siteEvent: (kind: string, site: string, at: string) => `ev.${kind}.${site}.${at}`,
  /** A webhook event dead-lettered for one endpoint (`<namespace>.<name>`): once per endpoint and event. */
  webhookDead: (endpoint: string, eventId: string) => `dead.${endpoint}.${eventId}`,
  /** A TLS report (RFC 8460) submitted as a message: its message id, so one report period is stored once. */
  tlsReport: (messageId: string) => messageId,
} as const;

/** The occurrence of one job attempt, for event and DSN ids. */
export const attemptOccurrence = (jobId: string, attempt: number) => `${jobId}.${attempt}`;

/** The occurrence of a message's suppressed recipients, found when it was routed. */
export const suppressionOccurrence = (messageId: string) => `${messageId}.s`;

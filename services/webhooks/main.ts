/**
 * Process entry point: `node services/webhooks/main.ts`, the webhook dispatcher (dispatcher.ts). Settings from
 * the environment (settings.ts and services/common/env.ts); drains on SIGTERM/SIGINT (requests in flight
 * finish; what was not acked is redelivered to the next dispatcher).
 */
import { runServiceMain } from '../common/service-main.ts';
import { startDispatcher } from './dispatcher.ts';
import { readWebhookSettings } from './settings.ts';

runServiceMain('webhooks', { watchConfig: false }, async ({ nc, logger, registry, loops }) => {
  const dispatcher = await startDispatcher({ nc, logger, registry, loops, settings: readWebhookSettings() });
  return { close: () => dispatcher.close(), info: { endpoints: dispatcher.endpoints() } };
});

/**
 * Process entry point: `node services/queue/main.ts`. Settings from the environment (settings.ts and
 * services/common/env.ts). Logs one `{"msg":"ready"}` line with its addresses; drains on SIGTERM/SIGINT.
 */
import { runServiceMain } from '../common/service-main.ts';
import { startQueue } from './service.ts';
import { readQueueSettings } from './settings.ts';

runServiceMain('queue', { watchConfig: true }, async ({ nc, config, logger, registry, loops }) => {
  const settings = readQueueSettings();
  const queue = await startQueue({ nc, config: config!, logger, registry, settings, loops });
  return { close: () => queue.close(), info: { admin: `${settings.adminHost}:${queue.adminPort}` } };
});

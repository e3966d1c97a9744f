/**
 * Process entry point: `node services/api/main.ts`. Settings from the environment (settings.ts and
 * services/common/env.ts). Logs one `{"msg":"ready"}` line with the API address; drains on SIGTERM/SIGINT.
 */
import { runServiceMain } from '../common/service-main.ts';
import { startApi } from './service.ts';
import { readApiSettings } from './settings.ts';

runServiceMain('api', { watchConfig: true }, async ({ nc, config, logger, registry }) => {
  const settings = readApiSettings();
  const api = await startApi({ nc, config: config!, logger, registry, settings });
  return {
    close: () => api.close(),
    info: { api: `${api.host}:${api.port}`, tls: Boolean(settings.tls) },
  };
});

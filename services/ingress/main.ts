/**
 * Process entry point: `node services/ingress/main.ts`. Settings from the environment (settings.ts and
 * services/common/env.ts). Logs one `{"msg":"ready"}` line with the listener addresses; drains on SIGTERM/SIGINT.
 */
import { runServiceMain } from '../common/service-main.ts';
import { startIngress } from './service.ts';
import { readIngressSettings } from './settings.ts';

runServiceMain('ingress', { watchConfig: true }, async ({ nc, config, logger, registry }) => {
  const ingress = await startIngress({
    nc,
    config: config!,
    logger,
    registry,
    settings: readIngressSettings(),
  });
  return {
    close: () => ingress.close(),
    info: {
      listeners: ingress.listeners.map((l) => ({
        name: l.name,
        mode: l.mode,
        address: `${l.host}:${l.port}`,
      })),
    },
  };
});

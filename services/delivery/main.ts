/**
 * Process entry point: `node services/delivery/main.ts`. Settings from the environment (settings.ts and
 * services/common/env.ts). Logs one `{"msg":"ready"}` line; on SIGTERM/SIGINT finishes jobs in flight and exits 0.
 */
import { runServiceMain } from '../common/service-main.ts';
import { startDelivery } from './service.ts';
import { readDeliverySettings } from './settings.ts';

const settings = readDeliverySettings();
runServiceMain(
  'delivery',
  // The live config carries the RelayPolicies' destinations[] limits (shaping/limits.ts).
  { watchConfig: true, natsName: `postern-delivery-${settings.pool}` },
  async (ctx) => {
    const delivery = await startDelivery({
      nc: ctx.nc,
      logger: ctx.logger,
      registry: ctx.registry,
      settings,
      config: ctx.config,
      loops: ctx.loops,
    });
    return { close: () => delivery.close(), info: { pool: settings.pool } };
  },
);

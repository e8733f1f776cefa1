import { Router } from 'express';
import type { Metrics } from '../metrics.ts';

/** What /readyz asks: every dependency the process needs to serve rooms. */
export interface Readiness {
  check(): Promise<{ ready: boolean; checks: Record<string, string> }>;
}

export function healthRoutes(deps: { metrics: Metrics; readiness: Readiness }): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const { ready, checks } = await deps.readiness.check();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });
  router.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return router;
}

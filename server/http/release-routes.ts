import { Router } from 'express';
import type { Catalog } from '../catalog/catalog.ts';
import { HttpError } from './http-error.ts';

export function releaseRoutes(deps: { catalog: Catalog }): Router {
  const router = Router();
  router.get('/', async (_req, res) => {
    res.json({ releases: await deps.catalog.list() });
  });
  router.get('/:releaseId', async (req, res) => {
    const release = await deps.catalog.get(req.params.releaseId);
    if (!release) throw new HttpError('not_found', `no release "${req.params.releaseId}"`);
    res.json(release);
  });
  router.get('/:releaseId/artwork/:artworkId', async (req, res) => {
    const file = await deps.catalog.artworkFile(req.params.releaseId, req.params.artworkId);
    if (!file) throw new HttpError('not_found', `no artwork "${req.params.artworkId}" in release "${req.params.releaseId}"`);
    res.type(file.mimeType).set('cache-control', 'public, max-age=3600').sendFile(file.path);
  });
  return router;
}

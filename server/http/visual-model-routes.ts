// A release's visual model, public like the release itself: its status and training
// records (the label's question: what was it trained on), and the textures generated
// with it, which the web app, the server's video and the renderer all draw.
//   GET /api/releases/:releaseId/visual-model                      { status, progress, failure, current, history }
//   GET /api/releases/:releaseId/visual-model/:modelId             one record (retired ones too)
//   GET /api/releases/:releaseId/visual-model/textures/:textureId  gen-<32 hex>: the raw RGBA bytes
import { Router, type Request } from 'express';
import { GENERATED_ID_PREFIX, isGeneratedArtworkId } from '../../media/visuals/model/types.ts';
import type { VisualModels } from '../catalog/visual-models.ts';
import type { Limits } from '../limits/limits.ts';
import { HttpError } from './http-error.ts';
import { take } from './route-helpers.ts';

export interface VisualModelRoutesDeps {
  models: VisualModels;
  limits: Limits;
}

const RELEASE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const MODEL_ID = /^[0-9a-f]{64}$/;

export function visualModelRoutes(deps: VisualModelRoutesDeps): Router {
  const router = Router();

  router.get('/:releaseId/visual-model', async (req, res) => {
    await take(deps.limits, ['visualmodel.read.address'], { address: deps.limits.addressOf(req) });
    const releaseId = releaseIdOf(req);
    const view = await deps.models.view(releaseId);
    if (!view) throw new HttpError('not_found', `no release "${releaseId}"`);
    res.set('cache-control', 'no-cache').json(view);
  });

  // Before /:modelId, whose pattern would not match it anyway; the order says which is meant.
  router.get('/:releaseId/visual-model/textures/:textureId', async (req, res) => {
    await take(deps.limits, ['visualmodel.texture.address'], { address: deps.limits.addressOf(req) });
    const releaseId = releaseIdOf(req);
    const textureId = req.params['textureId'];
    if (typeof textureId !== 'string' || !isGeneratedArtworkId(textureId)) {
      throw new HttpError('bad_request', `"${clip(String(textureId))}" is not a generated texture's id (${GENERATED_ID_PREFIX} and 32 hex digits)`);
    }
    const texture = await deps.models.readTexture(releaseId, textureId.slice(GENERATED_ID_PREFIX.length));
    if (!texture) throw new HttpError('not_found', `no texture "${textureId}" in release "${releaseId}"`);
    const etag = `"${texture.meta.sha256}"`;
    res.set({
      // A texture's id is its content's key: the same id never names other bytes.
      'cache-control': 'public, max-age=31536000, immutable',
      etag,
      'x-texture-size': String(texture.meta.size),
      'x-visual-model': texture.meta.modelId,
    });
    if (req.headers['if-none-match'] === etag) {
      res.status(304).end();
      return;
    }
    res.type('application/octet-stream').send(Buffer.from(texture.rgba.buffer, texture.rgba.byteOffset, texture.rgba.byteLength));
  });

  router.get('/:releaseId/visual-model/:modelId', async (req, res) => {
    await take(deps.limits, ['visualmodel.read.address'], { address: deps.limits.addressOf(req) });
    const releaseId = releaseIdOf(req);
    const modelId = req.params['modelId'];
    if (typeof modelId !== 'string' || !MODEL_ID.test(modelId)) throw new HttpError('bad_request', `"${clip(String(modelId))}" is not a model id (64 hex digits)`);
    const model = await deps.models.model(releaseId, modelId);
    if (!model) throw new HttpError('not_found', `no visual model ${modelId} of release "${releaseId}"`);
    // A record never changes; its retirement may come later, so it is asked again.
    res.set('cache-control', 'no-cache').json({ ...model.record, retired: model.retired });
  });

  return router;
}

/** The path's release id; 404 for one that cannot be a release's (it never reaches a storage key). */
function releaseIdOf(req: Request): string {
  const id = req.params['releaseId'];
  if (typeof id !== 'string' || !RELEASE_ID.test(id)) throw new HttpError('not_found', `no release "${clip(String(id))}"`);
  return id;
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

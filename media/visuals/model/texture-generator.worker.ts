// Worker thread of TextureGenerator (texture-generator.ts): holds up to MODELS_KEPT models'
// tensors (LRU by id) and answers one generation at a time.
import { parentPort } from 'node:worker_threads';
import { VisualModelError } from './errors.ts';
import { generateRgba, type LoadedModel } from './generator.ts';
import { loadTf, tf } from './tf.ts';
import { MODELS_KEPT, type GeneratorReply, type GeneratorRequest } from './texture-generator.ts';
import { decodeWeights, weightsSha256 } from './weights.ts';

const models = new Map<string, LoadedModel>();

function load(id: string, bytes: Uint8Array | null): LoadedModel | null {
  const hit = models.get(id);
  if (hit) {
    models.delete(id);
    models.set(id, hit);
    return hit;
  }
  if (!bytes) return null;
  if (weightsSha256(bytes) !== id) throw new VisualModelError(`model id ${id.slice(0, 12)}… is not the SHA-256 of its weights`);
  const content = decodeWeights(bytes);
  const params = new Map(content.tensors.map((t) => [t.name, tf.tensor(t.data, t.shape)] as const));
  const model: LoadedModel = {
    id,
    hp: content.hyperparameters,
    artworkIds: content.artworkIds,
    params,
    dispose: () => {
      for (const t of params.values()) t.dispose();
    },
  };
  models.set(id, model);
  while (models.size > MODELS_KEPT) {
    const oldest = models.keys().next().value!;
    models.get(oldest)!.dispose();
    models.delete(oldest);
  }
  return model;
}

parentPort!.on('message', (req: GeneratorRequest) => {
  void (async () => {
    let reply: GeneratorReply;
    const transfer: ArrayBuffer[] = [];
    try {
      await loadTf();
      const model = load(req.model.id, req.model.weights);
      if (!model) reply = { type: 'missing', job: req.job };
      else {
        const c0 = process.cpuUsage();
        const rgba = generateRgba(model, req.cond, req.seed, req.size);
        const c = process.cpuUsage(c0);
        reply = { type: 'done', job: req.job, rgba, cpuMs: (c.user + c.system) / 1000 };
        transfer.push(rgba.buffer as ArrayBuffer);
      }
    } catch (err) {
      reply = { type: 'error', job: req.job, message: err instanceof Error ? err.message : String(err), refused: err instanceof VisualModelError };
    }
    parentPort!.postMessage(reply, transfer);
  })();
});

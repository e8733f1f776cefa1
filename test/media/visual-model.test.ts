import { expect } from 'chai';
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VisualModelError } from '../../media/visuals/model/errors.ts';
import { TextureGenerator } from '../../media/visuals/model/texture-generator.ts';
import { loadTf, tf } from '../../media/visuals/model/tf.ts';
import { trainVisualModel } from '../../media/visuals/model/train.ts';
import { trainInChild } from '../../media/visuals/model/training-process.ts';
import type { Hyperparameters, TrainingImage, TrainResult } from '../../media/visuals/model/types.ts';
import { decodeWeights, describeWeights, encodeWeights, WEIGHTS_FORMAT } from '../../media/visuals/model/weights.ts';
import { exists, tempDir } from '../support/temp.ts';

// A tiny model and budget: the whole path runs in about a second per training.
const TINY: Partial<Hyperparameters> = {
  levels: [8, 6],
  code: 4,
  noise: [4, 2],
  scales: [[1, 1, 4], [1, 3, 8], [2, 3, 8]],
  banks: 2,
  quantiles: 256,
  batch: 2,
  crop: 16,
  trainScale: 32,
  dilations: [1, 1],
  margin: 1,
  tableScale: 48,
};

function image(id: string, width: number, height: number, pixel: (x: number, y: number) => [number, number, number, number]): TrainingImage {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) rgba.set(pixel(x, y), (y * width + x) * 4);
  return { id, sha256: createHash('sha256').update(rgba).digest('hex'), width, height, rgba };
}

const stripes = image('stripes', 48, 40, (x, y) => [((x >> 2) & 1) * 230, 40 + y * 4, 90, 255]);
const rings = image('rings', 40, 40, (x, y) => {
  const r = Math.hypot(x - 20, y - 20);
  return [200, Math.round(127 + 127 * Math.sin(r)), 30, 255];
});

function sha(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function finiteCurve(r: TrainResult): void {
  expect(r.lossCurve.length).to.be.greaterThan(0);
  for (const [, loss] of r.lossCurve) expect(Number.isFinite(loss), `loss ${loss}`).to.equal(true);
}

describe('visual model', function () {
  this.timeout(60_000);

  describe('training', () => {
    it("leaves the process's own failure handling alone (the wasm backend's Emscripten glue adds handlers that rethrow everything)", async () => {
      await loadTf();
      const rethrowing = (l: unknown) => String(l).includes('ExitStatus') || /throw reason/.test(String(l));
      expect(process.listeners('uncaughtException').some(rethrowing)).to.equal(false);
      expect(process.listeners('unhandledRejection').some(rethrowing)).to.equal(false);
    });

    it('gives the same weights for the same images, seed and steps, in process twice and in a child', async () => {
      const dir = await tempDir('visual-model');
      try {
        const config = { seed: 5, steps: 3, hyperparameters: TINY };
        const a = await trainVisualModel([stripes, rings], config);
        const b = await trainVisualModel([stripes, rings], config);
        const progress: number[] = [];
        const weightsFile = path.join(dir.path, 'weights.bin');
        const c = await trainInChild({ images: [stripes, rings], config, weightsFile }, { onProgress: (p) => progress.push(p.step) });
        expect(a.weightsSha256).to.equal(sha(a.weights));
        expect(b.weightsSha256).to.equal(a.weightsSha256);
        expect(c.weightsSha256).to.equal(a.weightsSha256);
        expect(sha(await fsp.readFile(weightsFile))).to.equal(a.weightsSha256);
        expect(exists(`${weightsFile}.tmp`)).to.equal(false);
        expect(progress).to.deep.equal([1, 2, 3]);
        expect(a.artworkIds).to.deep.equal(['stripes', 'rings']);
        // The default method samples its artwork: the weights carry it.
        expect(decodeWeights(a.weights).tensors.map((t) => t.name)).to.include.members(['art0', 'art1']);
        const described = describeWeights(a.weights);
        expect(described.hyperparameters['output']).to.equal('warp');
        const arts = decodeWeights(a.weights).tensors.filter((t) => t.name.startsWith('art'));
        expect(arts.map((t) => t.shape[2])).to.deep.equal([3, 3]);
        expect(described.artworkValues).to.equal(arts.reduce((s, t) => s + t.data.length, 0));
        expect(described.params).to.be.greaterThan(0);
        expect(a.steps).to.equal(3);
        expect(a.lossCurve.map(([s]) => s)).to.deep.equal([1, 2, 3]);
        finiteCurve(a);
        expect(a.software).to.include({ backend: 'wasm 4.22.0', tfjs: '4.22.0', node: process.version });
      } finally {
        await dir.remove();
      }
    });

    it('gives different weights for different seeds, and leaves no tensors behind', async () => {
      await loadTf();
      const tensors = tf.memory().numTensors;
      const a = await trainVisualModel([stripes], { seed: 1, steps: 2, hyperparameters: TINY });
      const b = await trainVisualModel([stripes], { seed: 2, steps: 2, hyperparameters: TINY });
      expect(a.weightsSha256).to.not.equal(b.weightsSha256);
      expect(tf.memory().numTensors).to.equal(tensors);
    });

    it('lowers the loss over a few dozen steps', async () => {
      const r = await trainVisualModel([stripes], { seed: 3, steps: 40, hyperparameters: { ...TINY, learningRate: 1e-2 } });
      const first = r.lossCurve.slice(0, 5).reduce((s, [, l]) => s + l, 0) / 5;
      const last = r.lossCurve.slice(-5).reduce((s, [, l]) => s + l, 0) / 5;
      expect(last).to.be.lessThan(first * 0.8);
    });

    it('a child killed midway leaves no weights file, and the next run trains', async () => {
      const dir = await tempDir('visual-model');
      try {
        const weightsFile = path.join(dir.path, 'weights.bin');
        let pid = 0;
        const job = { images: [stripes, rings], config: { seed: 9, steps: 200, hyperparameters: TINY }, weightsFile };
        const killed = trainInChild(job, {
          onSpawn: (p) => (pid = p),
          onProgress: (p) => {
            if (p.step === 1) process.kill(pid, 'SIGKILL');
          },
        });
        const err = await killed.then(() => null, (e: unknown) => e as Error);
        expect(err?.message).to.match(/stopped before it finished \(SIGKILL\)/);
        expect(exists(weightsFile)).to.equal(false);
        expect(exists(`${weightsFile}.tmp`)).to.equal(false);
        const again = await trainInChild({ ...job, config: { ...job.config, steps: 2 } });
        expect(sha(await fsp.readFile(weightsFile))).to.equal(again.weightsSha256);
      } finally {
        await dir.remove();
      }
    });

    it('an abort stops the child and rejects', async () => {
      const dir = await tempDir('visual-model');
      try {
        const weightsFile = path.join(dir.path, 'weights.bin');
        const ac = new AbortController();
        const err = await trainInChild(
          { images: [stripes], config: { seed: 1, steps: 500, hyperparameters: TINY }, weightsFile },
          { signal: ac.signal, onProgress: () => ac.abort(new Error('host cancelled')) },
        ).then(() => null, (e: unknown) => e as Error);
        expect(err?.message).to.equal('host cancelled');
        expect(exists(weightsFile)).to.equal(false);
      } finally {
        await dir.remove();
      }
    });
  });

  describe('bad input', () => {
    const cases: [string, TrainingImage][] = [
      ['a single colour', image('flat', 30, 20, () => [90, 20, 200, 255])],
      ['greyscale', image('grey', 32, 32, (x, y) => [(x * 8) & 255, (x * 8) & 255, (x * 8) & 255, 255 - y])],
      ['tiny (8x8)', image('tiny', 8, 8, (x, y) => [x * 30, y * 30, 0, 255])],
      ['huge (3000x2000)', image('huge', 3000, 2000, (x, y) => [(x ^ y) & 255, x & 255, y & 255, 255])],
      ['fully transparent', image('clear', 24, 24, (x) => [255, x * 10, 0, 0])],
    ];
    for (const [what, img] of cases) {
      it(`trains on one image that is ${what}, with a finite loss`, async () => {
        const r = await trainVisualModel([img], { seed: 1, steps: 3, hyperparameters: TINY });
        finiteCurve(r);
        for (const t of decodeWeights(r.weights).tensors) expect(t.data.every(Number.isFinite), t.name).to.equal(true);
      });
    }

    it('refuses what cannot be trained with a VisualModelError, naming why', async () => {
      const refusal = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as Error);
      const none = await refusal(trainVisualModel([], { seed: 1, steps: 3, hyperparameters: TINY }));
      expect(none).to.be.instanceOf(VisualModelError);
      expect(none?.message).to.match(/no artwork/);
      const short = await refusal(trainVisualModel([{ ...stripes, rgba: stripes.rgba.subarray(0, 100) }], { seed: 1, steps: 3, hyperparameters: TINY }));
      expect(short).to.be.instanceOf(VisualModelError);
      expect(short?.message).to.match(/is not 48x40 RGBA/);
      const noSteps = await refusal(trainVisualModel([stripes], { seed: 1, steps: 0, hyperparameters: TINY }));
      expect(noSteps).to.be.instanceOf(VisualModelError);
      const inChild = await refusal(trainInChild({ images: [], config: { seed: 1, steps: 3 }, weightsFile: '/nonexistent/w.bin' }));
      expect(inChild).to.be.instanceOf(VisualModelError);
    });
  });

  describe('weights file', () => {
    it('round-trips names, shapes, values, artwork ids and hyperparameters', () => {
      const tensors = [
        { name: 'a', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-20, -7]) },
        { name: 'b', shape: [1], data: Float32Array.of(Math.PI) },
      ];
      const hp = { levels: [4], code: 2, noise: [3], scales: [[1, 1, 2]], banks: 1, quantiles: 8, batch: 1, crop: 8, trainScale: 16, learningRate: 0.1 } as Hyperparameters;
      const bytes = encodeWeights({ artworkIds: ['x', 'é'], hyperparameters: hp, tensors });
      const back = decodeWeights(bytes);
      expect(back.artworkIds).to.deep.equal(['x', 'é']);
      expect(back.hyperparameters).to.deep.equal(hp);
      expect(back.tensors.map((t) => [t.name, t.shape, Array.from(t.data)])).to.deep.equal(tensors.map((t) => [t.name, t.shape, Array.from(t.data)]));
      expect(describeWeights(bytes)).to.deep.equal({ format: WEIGHTS_FORMAT, params: 7, artworkValues: 0, artworkIds: ['x', 'é'], hyperparameters: hp });
      expect(encodeWeights({ artworkIds: ['x', 'é'], hyperparameters: hp, tensors })).to.deep.equal(bytes);
      expect(() => decodeWeights(bytes.subarray(0, bytes.length - 4))).to.throw(VisualModelError, /truncated/);
      expect(() => describeWeights(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8))).to.throw(VisualModelError, /not a visual model/);
    });
  });

  describe('generation', () => {
    let model: { id: string; weights: Uint8Array };
    let generator: TextureGenerator;
    before(async () => {
      const r = await trainVisualModel([stripes, rings], { seed: 4, steps: 4, hyperparameters: TINY });
      model = { id: r.weightsSha256, weights: r.weights };
      generator = new TextureGenerator();
    });
    after(() => generator.close());

    const cond = { artworks: [{ id: 'stripes', weight: 1 }], detail: 0.5, busy: 0.5 };

    it('gives 512² opaque RGBA in the worker, the same bytes for the same input', async () => {
      const a = await generator.generate(model, cond, 11);
      const b = await generator.generate(model, cond, 11);
      expect(a.length).to.equal(512 * 512 * 4);
      expect(a.every((v, i) => i % 4 !== 3 || v === 255)).to.equal(true);
      expect(sha(b)).to.equal(sha(a));
      // Not one flat colour.
      expect(new Set(Array.from({ length: 1000 }, (_, i) => a[i * 1000]!)).size).to.be.greaterThan(3);
    });

    it('gives different bytes for another seed, another artwork, a blend, and another detail', async () => {
      const base = sha(await generator.generate(model, cond, 11));
      const others = await Promise.all([
        generator.generate(model, cond, 12),
        generator.generate(model, { ...cond, artworks: [{ id: 'rings', weight: 1 }] }, 11),
        generator.generate(model, { ...cond, artworks: [{ id: 'rings', weight: 1 }, { id: 'stripes', weight: 1 }] }, 11),
        generator.generate(model, { ...cond, detail: 1 }, 11),
      ]);
      const hashes = others.map(sha);
      expect(new Set([base, ...hashes]).size).to.equal(5);
    });

    it('treats artwork it does not know as the first artwork, and sizes other than 512', async () => {
      const first = await generator.generate(model, cond, 3, 256);
      const unknown = await generator.generate(model, { ...cond, artworks: [{ id: 'nobody', weight: 1 }] }, 3, 256);
      expect(first.length).to.equal(256 * 256 * 4);
      expect(sha(unknown)).to.equal(sha(first));
    });

    it('a model with direct RGB output (no warp) trains deterministically and generates the same bytes twice', async () => {
      const hp = { ...TINY, output: 'rgb' };
      const a = await trainVisualModel([stripes, rings], { seed: 2, steps: 3, hyperparameters: hp });
      const b = await trainVisualModel([stripes, rings], { seed: 2, steps: 3, hyperparameters: hp });
      expect(b.weightsSha256).to.equal(a.weightsSha256);
      finiteCurve(a);
      expect(decodeWeights(a.weights).tensors.map((t) => t.name)).to.not.include('art0');
      const rgbModel = { id: a.weightsSha256, weights: a.weights };
      const x = await generator.generate(rgbModel, cond, 5);
      const y = await generator.generate(rgbModel, cond, 5);
      const z = await generator.generate(rgbModel, { ...cond, artworks: [{ id: 'rings', weight: 1 }] }, 5);
      expect(x.length).to.equal(512 * 512 * 4);
      expect(sha(y)).to.equal(sha(x));
      expect(sha(z)).to.not.equal(sha(x));
    });

    it('keeps serving a model after more models than the worker holds have passed through it', async () => {
      const first = sha(await generator.generate(model, cond, 21, 64));
      for (let seed = 30; seed < 35; seed++) {
        const r = await trainVisualModel([rings], { seed, steps: 1, hyperparameters: TINY });
        expect((await generator.generate({ id: r.weightsSha256, weights: r.weights }, cond, 1, 64)).length).to.equal(64 * 64 * 4);
      }
      expect(sha(await generator.generate(model, cond, 21, 64))).to.equal(first);
    });

    it('rejects weights that are not the model id with a VisualModelError and keeps serving', async () => {
      const err = await generator.generate({ id: '0'.repeat(64), weights: model.weights }, cond, 1).then(() => null, (e: unknown) => e as Error);
      expect(err).to.be.instanceOf(VisualModelError);
      const garbage = await generator.generate({ id: sha(Uint8Array.of(1, 2, 3)), weights: Uint8Array.of(1, 2, 3) }, cond, 1).then(() => null, (e: unknown) => e as Error);
      expect(garbage).to.be.instanceOf(VisualModelError);
      expect((await generator.generate(model, cond, 1, 64)).length).to.equal(64 * 64 * 4);
    });
  });
});

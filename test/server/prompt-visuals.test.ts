// PromptVisuals at the unit level: the model's source and the generator are stand-ins
// here (test/server/visual-model.test.ts and test/media/visual-model.test.ts run the real ones).
import { expect } from 'chai';
import pino from 'pino';
import { interpretPrompt } from '../../shared/prompt-interpreter.ts';
import { isGeneratedArtworkId } from '../../shared/visual-params.ts';
import { PromptVisuals, blendWithTexture, type TextureMaker, type VisualModelSource } from '../../server/rooms/prompt-visuals.ts';
import type { Conditioning } from '../../media/visuals/model/types.ts';

const log = pino({ level: 'silent' });
const ART = [
  { id: 'cover', tags: ['sun'], palette: ['#ff8800'] },
  { id: 'tide', tags: ['ocean', 'wave'], palette: ['#004488'] },
];

function fakes(opts: { model?: boolean; fail?: boolean; slowMs?: number } = {}) {
  const kept = new Map<string, { modelId: string; conditioning: Conditioning; seed: number; size: number; rgba: Uint8Array }>();
  const calls: { cond: Conditioning; seed: number }[] = [];
  const source: VisualModelSource = {
    current: async () => (opts.model === false ? null : { id: 'a'.repeat(64), weights: new Uint8Array(8), artworkIds: ['cover', 'tide'] }),
    hasTexture: async (r, key) => kept.has(`${r}/${key}`),
    saveTexture: async (r, key, meta, rgba) => void kept.set(`${r}/${key}`, { ...meta, rgba }),
  };
  const maker: TextureMaker = {
    generate: async (_m, cond, seed) => {
      calls.push({ cond, seed });
      if (opts.slowMs) await new Promise((r) => setTimeout(r, opts.slowMs));
      if (opts.fail) throw new Error('the worker died');
      return new Uint8Array(16 * 16 * 4).fill(seed & 0xff);
    },
  };
  return { source, maker, kept, calls };
}

describe('prompt visuals (the visual model steering a prompt)', () => {
  it('adds a generated texture to the params the interpreter made, kept once under its key, with the model named', async () => {
    const f = fakes();
    const pv = new PromptVisuals({ source: f.source, maker: f.maker, log, mix: 0.6 });
    const params = interpretPrompt('stormy ocean waves', { artwork: ART, previous: null }).params;
    const r = await pv.steer('rel', 'cover', params, 'stormy ocean waves');
    expect(r.generated).to.not.equal(null);
    expect(r.generated!.modelId).to.equal('a'.repeat(64));
    expect(r.generated!.recordUrl).to.equal(`/api/releases/rel/visual-model/${'a'.repeat(64)}`);
    const gen = r.params.artworks[0]!;
    expect(isGeneratedArtworkId(gen.id)).to.equal(true);
    expect(gen.id).to.equal(r.generated!.textureId);
    expect(gen.weight).to.equal(0.6);
    const rest = r.params.artworks.slice(1).reduce((s, a) => s + a.weight, 0);
    expect(rest).to.be.closeTo(0.4, 0.002);
    expect(r.params.palette, 'the rest of the params are the interpreter’s').to.deep.equal(params.palette);
    expect(f.kept.size).to.equal(1);
    expect(f.calls[0]!.cond.busy).to.equal(params.intensity);
    // The same prompt again: the same texture, not generated again.
    const again = await pv.steer('rel', 'cover', params, 'stormy ocean waves');
    expect(again.params).to.deep.equal(r.params);
    expect(f.calls.length).to.equal(1);
    // Another text: another seed, another texture.
    const other = await pv.steer('rel', 'cover', params, 'stormy ocean waves!');
    expect(other.generated!.textureId).to.not.equal(r.generated!.textureId);
  });

  it('leaves the params as they are without a model, with mix 0, or when generation fails or is too slow', async () => {
    const params = interpretPrompt('calm', { artwork: ART, previous: null }).params;
    for (const [name, f, mix, waitMs] of [
      ['no model', fakes({ model: false }), 0.6, 4000],
      ['mix 0', fakes(), 0, 4000],
      ['generation fails', fakes({ fail: true }), 0.6, 4000],
      ['too slow', fakes({ slowMs: 300 }), 0.6, 50],
    ] as const) {
      const pv = new PromptVisuals({ source: f.source, maker: f.maker, log, mix, waitMs });
      const r = await pv.steer('rel', 'cover', params, 'calm');
      expect(r.generated, name).to.equal(null);
      expect(r.params, name).to.equal(params);
    }
  });

  it('refuses to queue more generations than it may (the prompt is shown without), and one key is generated once however many ask', async () => {
    const f = fakes({ slowMs: 100 });
    const pv = new PromptVisuals({ source: f.source, maker: f.maker, log, mix: 0.5, maxPending: 2 });
    const params = interpretPrompt('fire', { artwork: ART, previous: null }).params;
    const results = await Promise.all(['a', 'a', 'b', 'c'].map((t) => pv.steer('rel', 'cover', params, t)));
    expect(results.map((r) => r.generated !== null)).to.deep.equal([true, true, true, false]);
    expect(f.calls.length).to.equal(2);
  });

  it('asks the prompter’s limits only for a texture not kept yet, and shows the prompt without one when they say no', async () => {
    const f = fakes();
    const pv = new PromptVisuals({ source: f.source, maker: f.maker, log, mix: 0.5 });
    const params = interpretPrompt('fire', { artwork: ART, previous: null }).params;
    let asked = 0;
    const no = async () => (asked++, false);
    expect((await pv.steer('rel', 'cover', params, 'fire', { mayGenerate: no })).generated).to.equal(null);
    expect(f.calls.length).to.equal(0);
    const yes = async () => (asked++, true);
    expect((await pv.steer('rel', 'cover', params, 'fire', { mayGenerate: yes })).generated).to.not.equal(null);
    expect((await pv.steer('rel', 'cover', params, 'fire', { mayGenerate: no })).generated, 'a kept texture costs nothing').to.not.equal(null);
    expect(asked).to.equal(2);
    // Kept under one release, not under another that shares the model.
    await pv.steer('other', 'cover', params, 'fire', { mayGenerate: no });
    expect(asked).to.equal(3);
  });

  it('does not show a texture whose model was retired while it was generated', async () => {
    const f = fakes({ slowMs: 30 });
    let calls = 0;
    const source = { ...f.source, current: async () => (calls++ === 0 ? { id: 'a'.repeat(64), weights: new Uint8Array(8), artworkIds: ['cover'] } : null) };
    const pv = new PromptVisuals({ source, maker: f.maker, log, mix: 0.5 });
    const params = interpretPrompt('fire', { artwork: ART, previous: null }).params;
    const r = await pv.steer('rel', 'cover', params, 'fire');
    expect(r.generated).to.equal(null);
    expect(r.params).to.equal(params);
  });

  it('blends the texture with the named artworks (or the cover), at most three in all', () => {
    expect(blendWithTexture([], 'cover', 'gen-x', 0.5)).to.deep.equal([
      { id: 'gen-x', weight: 0.5 },
      { id: 'cover', weight: 0.5 },
    ]);
    const three = blendWithTexture(
      [
        { id: 'a', weight: 0.2 },
        { id: 'b', weight: 0.5 },
        { id: 'c', weight: 0.3 },
      ],
      'cover',
      'gen-x',
      0.6,
    );
    expect(three.map((a) => a.id)).to.deep.equal(['gen-x', 'b', 'c']);
    expect(three[1]!.weight).to.be.closeTo(0.25, 0.001);
    expect(blendWithTexture([{ id: 'a', weight: 1 }], 'cover', 'gen-x', 1)).to.deep.equal([{ id: 'gen-x', weight: 1 }]);
  });
});

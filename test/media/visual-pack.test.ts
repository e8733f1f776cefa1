import { expect } from 'chai';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createCanvas } from '@napi-rs/canvas';
import { paintDemoArtwork, type DemoArtwork } from '../../media/demo/artwork.ts';
import {
  PACK_FILE,
  THUMBNAIL_SIDE,
  VisualPackError,
  buildVisualPack,
  engineArtwork,
  readVisualPack,
  writeVisualPack,
  type VisualPack,
  type VisualPackImage,
} from '../../media/visuals/visual-pack.ts';
import { TEXTURE_SIZE, VisualEngine } from '../../shared/visual-engine.ts';
import { neutralVisualParams } from '../../shared/visual-params.ts';
import { tempDir } from '../support/temp.ts';

type Rgb = [number, number, number];
const rgb = (hex: string): Rgb => [parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16), parseInt(hex.slice(5, 7), 16)];
const distance = (a: string, b: string) => {
  const x = rgb(a);
  const y = rgb(b);
  return Math.hypot(x[0] - y[0], x[1] - y[1], x[2] - y[2]);
};

const asImage = (a: DemoArtwork, consent = true): VisualPackImage => ({ id: a.id, tags: a.tags, consent, bytes: a.png, mimeType: 'image/png' });

describe('visual pack', function () {
  this.timeout(120000);
  let art: DemoArtwork[];
  let pack: VisualPack;

  before(async () => {
    art = await paintDemoArtwork();
    // The last piece is offered without consent.
    pack = await buildVisualPack(art.map((a, i) => asImage(a, i < art.length - 1)));
  });

  it('holds every consented demo image at working size, with its tags and a thumbnail', async () => {
    expect(pack.artwork.map((a) => a.id)).to.deep.equal(art.slice(0, -1).map((a) => a.id));
    for (const [i, a] of pack.artwork.entries()) {
      expect(a.texture.length).to.equal(TEXTURE_SIZE * TEXTURE_SIZE * 4);
      expect(a.width).to.equal(art[i]!.width);
      expect(a.height).to.equal(art[i]!.height);
      expect(a.aspect).to.be.closeTo(art[i]!.width / art[i]!.height, 1e-9);
      expect(a.tags).to.deep.equal(art[i]!.tags);
      expect(Math.max(a.thumbnailWidth, a.thumbnailHeight)).to.equal(THUMBNAIL_SIDE);
      expect(a.thumbnail.subarray(1, 4).toString('latin1')).to.equal('PNG');
    }
  });

  it("finds palettes near the ones the demo's pieces were painted with", () => {
    for (const [i, a] of pack.artwork.entries()) {
      const declared = art[i]!.palette;
      expect(a.palette.length, a.id).to.be.within(3, 5);
      expect(a.palette.every((c) => /^#[0-9a-f]{6}$/.test(c.hex))).to.equal(true);
      const shares = a.palette.reduce((s, c) => s + c.share, 0);
      expect(shares, `${a.id} shares`).to.be.closeTo(1, 0.01);
      // The dominant colour is one the piece was painted with.
      const dominant = Math.min(...declared.map((d) => distance(d, a.palette[0]!.hex)));
      expect(dominant, `${a.id}: dominant ${a.palette[0]!.hex} vs ${declared.join(' ')}`).to.be.below(35);
      // Most declared colours have an extracted colour close by (painting blends them, so "close" is loose).
      const near = declared.filter((d) => a.palette.some((c) => distance(d, c.hex) < 100)).length;
      expect(near, `${a.id}: ${a.palette.map((c) => c.hex).join(' ')} vs ${declared.join(' ')}`).to.be.at.least(3);
    }
  });

  it('finds salient regions inside the image, scored and ordered', () => {
    for (const a of pack.artwork) {
      expect(a.regions.length, a.id).to.be.within(1, 6);
      for (const r of a.regions) {
        expect(r.x).to.be.at.least(0);
        expect(r.y).to.be.at.least(0);
        expect(r.width).to.be.above(0);
        expect(r.height).to.be.above(0);
        expect(r.x + r.width).to.be.at.most(1 + 1e-9);
        expect(r.y + r.height).to.be.at.most(1 + 1e-9);
        expect(r.score).to.be.within(0, 1);
      }
      const scores = a.regions.map((r) => r.score);
      expect(scores).to.deep.equal([...scores].sort((x, y) => y - x));
    }
    // The cover's sun is its most salient region: it lies around the middle of the upper half.
    const sun = pack.artwork[0]!.regions[0]!;
    expect(sun.x + sun.width / 2).to.be.within(0.3, 0.7);
  });

  it('records every asset with its consent, and never uses one without', () => {
    expect(pack.assets.map((a) => a.id)).to.deep.equal(art.map((a) => a.id));
    const excluded = pack.assets.at(-1)!;
    expect(excluded).to.include({ id: art.at(-1)!.id, consent: false, used: false, excludedBecause: 'no consent from the artist' });
    expect(pack.assets.slice(0, -1).every((a) => a.consent && a.used)).to.equal(true);
    expect(pack.artwork.some((a) => a.id === excluded.id)).to.equal(false);
    for (const a of pack.assets) expect(a.sha256).to.match(/^[0-9a-f]{64}$/);
  });

  it('is the same pack when built twice from the same images', async () => {
    const again = await buildVisualPack(art.slice(0, 2).map((a) => asImage(a)));
    expect(again.artwork[0]!.palette).to.deep.equal(pack.artwork[0]!.palette);
    expect(again.artwork[1]!.regions).to.deep.equal(pack.artwork[1]!.regions);
    expect(Buffer.from(again.artwork[1]!.texture).equals(Buffer.from(pack.artwork[1]!.texture))).to.equal(true);
  });

  it('round-trips through writeVisualPack and readVisualPack', async () => {
    const dir = await tempDir('pack');
    try {
      await writeVisualPack(dir.path, pack);
      const files = (await fsp.readdir(dir.path)).sort();
      expect(files).to.include(PACK_FILE);
      expect(files.filter((f) => f.endsWith('.rgba')).length).to.equal(pack.artwork.length);
      const back = await readVisualPack(dir.path);
      expect(back.assets).to.deep.equal(pack.assets);
      expect(back.artwork.length).to.equal(pack.artwork.length);
      for (const [i, a] of back.artwork.entries()) {
        const { texture, thumbnail, ...meta } = a;
        const { texture: t0, thumbnail: th0, ...meta0 } = pack.artwork[i]!;
        expect(meta).to.deep.equal(meta0);
        expect(Buffer.from(texture).equals(Buffer.from(t0))).to.equal(true);
        expect(thumbnail.equals(th0)).to.equal(true);
      }
      // The loaded pack drives the engine, each piece focused on its top region.
      const forEngine = engineArtwork(back);
      for (const a of forEngine) {
        expect(a.focus!.x).to.be.within(0, 1);
        expect(a.focus!.y).to.be.within(0, 1);
      }
      const engine = new VisualEngine(forEngine);
      const out = new Uint8ClampedArray(64 * 36 * 4);
      engine.renderFrame(out, 64, 36, { from: null, to: neutralVisualParams(), mix: 1, timeSec: 0, energy: 0, beatPhase: 0 });
      expect(out.some((v, k) => (k & 3) !== 3 && v > 0)).to.equal(true);
    } finally {
      await dir.remove();
    }
  });

  it('refuses a damaged pack folder clearly', async () => {
    const dir = await tempDir('pack-bad');
    try {
      await expectReject(readVisualPack(dir.path), /pack\.json is missing/);
      await writeVisualPack(dir.path, pack);
      await fsp.truncate(path.join(dir.path, `${pack.artwork[0]!.id}.rgba`), 100);
      await expectReject(readVisualPack(dir.path), /texture holds 100 bytes/);
      await fsp.writeFile(path.join(dir.path, PACK_FILE), '{"version": 1, "artwork": "nope"}');
      await expectReject(readVisualPack(dir.path), /not a visual pack/);
      await fsp.writeFile(path.join(dir.path, PACK_FILE), '{');
      await expectReject(readVisualPack(dir.path), /not valid JSON/);
    } finally {
      await dir.remove();
    }
  });

  describe('bad input', () => {
    const one = (over: Partial<VisualPackImage>): VisualPackImage[] => [{ ...asImage(art[0]!), ...over }];

    it('refuses bytes that are not an image, naming the asset', async () => {
      await expectReject(buildVisualPack(one({ bytes: Buffer.from('hello, this is not a picture') })), /artwork "afterimage": is not a PNG, JPEG or WebP/);
    });

    it('refuses a PNG whose data is corrupt', async () => {
      const png = Buffer.from(art[0]!.png);
      const broken = Buffer.concat([png.subarray(0, 100), Buffer.alloc(500, 0x42)]);
      await expectReject(buildVisualPack(one({ bytes: broken })), /afterimage.*(damaged|cannot be decoded)/);
    });

    it('refuses an empty file and a damaged header', async () => {
      await expectReject(buildVisualPack(one({ bytes: Buffer.alloc(0) })), /is empty/);
      await expectReject(buildVisualPack(one({ bytes: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]) })), /damaged header/);
    });

    it('refuses an image claiming a huge size before decoding it', async () => {
      const png = Buffer.from(art[0]!.png);
      png.writeUInt32BE(100000, 16);
      png.writeUInt32BE(100000, 20);
      await expectReject(buildVisualPack(one({ bytes: png })), /100000x100000; at most 8192x8192/);
    });

    it('refuses an image too small to use', async () => {
      const tiny = await createCanvas(4, 4).encode('png');
      await expectReject(buildVisualPack(one({ bytes: tiny })), /is 4x4; at least/);
    });

    it('refuses a pack with no consented artwork, duplicate ids and bad ids', async () => {
      await expectReject(buildVisualPack(one({ consent: false })), /no artwork has the artist's consent/);
      await expectReject(buildVisualPack([asImage(art[0]!), asImage(art[0]!)]), /appears twice/);
      await expectReject(buildVisualPack(one({ id: '../etc' })), /must be lowercase/);
    });

    it('accepts a JPEG', async () => {
      const canvas = createCanvas(200, 120);
      const ctx = canvas.getContext('2d');
      ctx.fillStyle = '#3366cc';
      ctx.fillRect(0, 0, 200, 120);
      ctx.fillStyle = '#ffcc00';
      ctx.fillRect(60, 30, 80, 60);
      const jpeg = await canvas.encode('jpeg', 90);
      const p = await buildVisualPack([{ id: 'photo', tags: ['Blue', ' sky '], consent: true, bytes: jpeg, mimeType: 'image/jpeg' }]);
      expect(p.artwork[0]!.width).to.equal(200);
      expect(p.artwork[0]!.tags).to.deep.equal(['blue', 'sky']);
      expect(distance(p.artwork[0]!.palette[0]!.hex, '#3366cc')).to.be.below(20);
    });
  });
});

async function expectReject(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect((err as Error).message).to.match(pattern);
    if (!(err instanceof VisualPackError)) throw new Error(`expected a VisualPackError, got ${(err as Error).name}: ${(err as Error).message}`);
    return;
  }
  throw new Error(`expected a rejection matching ${pattern}`);
}

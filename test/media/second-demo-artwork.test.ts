import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { paintDemoArtwork } from '../../media/demo/artwork.ts';
import { paintSecondDemoArtwork } from '../../media/demo/second-artwork.ts';
import { SECOND_DEMO_RELEASE_ID, writeSecondDemoReleaseFolder } from '../../server/catalog/second-demo-release.ts';
import { MANIFEST_FILE_NAME, ReleaseManifestSchema } from '../../shared/release-manifest.ts';

/** Mean luma (0..255) of a PNG. */
async function tone(png: Buffer): Promise<{ luma: number }> {
  const image = await loadImage(png);
  const canvas = createCanvas(image.width, image.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0);
  const d = ctx.getImageData(0, 0, image.width, image.height).data;
  let luma = 0;
  for (let i = 0; i < d.length; i += 4) {
    luma += 0.299 * d[i]! + 0.587 * d[i + 1]! + 0.114 * d[i + 2]!;
  }
  return { luma: luma / d.length * 4 };
}

describe('second demo release', function () {
  this.timeout(60_000);

  it('paints the same PNG bytes every time, cover first', async () => {
    const [a, b] = [await paintSecondDemoArtwork(), await paintSecondDemoArtwork()];
    expect(a.map((x) => x.id)).to.deep.equal(['wash', 'shore', 'tiles']);
    expect(a[0]!.kind).to.equal('cover');
    for (let i = 0; i < a.length; i++) expect(Buffer.compare(a[i]!.png, b[i]!.png), a[i]!.id).to.equal(0);
  });

  it('is pale where the first demo release is dark', async () => {
    const second = await Promise.all((await paintSecondDemoArtwork()).map((a) => tone(a.png)));
    const first = await Promise.all((await paintDemoArtwork()).map((a) => tone(a.png)));
    // Every pastel piece is far lighter than every first-release piece but its cream cover.
    const firstDark = first.slice(1);
    for (const s of second) for (const f of firstDark) expect(s.luma).to.be.greaterThan(f.luma + 60);
  });

  it('writes a release folder whose manifest validates', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'second-demo-'));
    try {
      const manifest = await writeSecondDemoReleaseFolder(dir);
      expect(manifest.id).to.equal(SECOND_DEMO_RELEASE_ID);
      const parsed = ReleaseManifestSchema.parse(JSON.parse(await fsp.readFile(path.join(dir, MANIFEST_FILE_NAME), 'utf8')));
      expect(parsed.artwork.map((a) => a.id)).to.deep.equal(['wash', 'shore', 'tiles']);
      for (const a of parsed.artwork) {
        expect(a.consent).to.equal(true);
        expect((await fsp.stat(path.join(dir, a.file))).size).to.be.greaterThan(10_000);
      }
      for (const s of parsed.stems) expect((await fsp.stat(path.join(dir, s.file))).size).to.be.greaterThan(10_000);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

import { expect } from 'chai';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { paintDemoArtwork } from '../../media/demo/artwork.ts';
import type { DemoArtwork } from '../../media/demo/artwork.ts';

type Rgb = [number, number, number];

interface Decoded {
  art: DemoArtwork;
  width: number;
  height: number;
  pixels: Uint8ClampedArray;
  mean: Rgb;
}

const hexToRgb = (hex: string): Rgb => [
  parseInt(hex.slice(1, 3), 16),
  parseInt(hex.slice(3, 5), 16),
  parseInt(hex.slice(5, 7), 16),
];

const distance = (a: Rgb, b: Rgb): number => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

async function decode(art: DemoArtwork): Promise<Decoded> {
  const image = await loadImage(art.png);
  const canvas = createCanvas(image.width, image.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0);
  const pixels = ctx.getImageData(0, 0, image.width, image.height).data;
  const sum: Rgb = [0, 0, 0];
  for (let i = 0; i < pixels.length; i += 4) {
    sum[0] += pixels[i]!;
    sum[1] += pixels[i + 1]!;
    sum[2] += pixels[i + 2]!;
  }
  const n = pixels.length / 4;
  return { art, width: image.width, height: image.height, pixels, mean: [sum[0] / n, sum[1] / n, sum[2] / n] };
}

/** Euclidean projection onto the probability simplex (sort-based algorithm). */
function projectToSimplex(v: number[]): number[] {
  const sorted = [...v].sort((a, b) => b - a);
  let cumulative = 0;
  let theta = 0;
  sorted.forEach((x, i) => {
    cumulative += x;
    const t = (cumulative - 1) / (i + 1);
    if (x - t > 0) theta = t;
  });
  return v.map((x) => Math.max(0, x - theta));
}

/** Distance from a colour to the nearest convex blend of the palette, by projected gradient descent. */
function distanceToBlend(colour: Rgb, palette: Rgb[]): number {
  const unit = palette.map((p) => p.map((c) => c / 255) as Rgb);
  const target = colour.map((c) => c / 255) as Rgb;
  const blend = (w: number[]): Rgb => {
    const out: Rgb = [0, 0, 0];
    unit.forEach((p, i) => {
      out[0] += p[0] * w[i]!;
      out[1] += p[1] * w[i]!;
      out[2] += p[2] * w[i]!;
    });
    return out;
  };
  const lipschitz = 2 * unit.reduce((s, p) => s + p[0] ** 2 + p[1] ** 2 + p[2] ** 2, 0);
  let w = unit.map(() => 1 / unit.length);
  for (let iter = 0; iter < 4000; iter++) {
    const b = blend(w);
    const r = [b[0] - target[0], b[1] - target[1], b[2] - target[2]] as const;
    const grad = unit.map((p) => 2 * (p[0] * r[0] + p[1] * r[1] + p[2] * r[2]));
    w = projectToSimplex(w.map((x, i) => x - grad[i]! / lipschitz));
  }
  return distance(blend(w), target) * 255;
}

/** Average distance from each sampled pixel to its nearest palette colour, and each colour's share of pixels. */
function paletteFit(d: Decoded, palette: Rgb[]): { error: number; shares: number[] } {
  const shares = palette.map(() => 0);
  let error = 0;
  let n = 0;
  // Every 7th pixel: a prime stride avoids lining up with the pieces' grids and scanlines.
  for (let i = 0; i < d.pixels.length; i += 4 * 7) {
    const px: Rgb = [d.pixels[i]!, d.pixels[i + 1]!, d.pixels[i + 2]!];
    let best = 0;
    let bestDist = Infinity;
    palette.forEach((p, k) => {
      const dist = distance(px, p);
      if (dist < bestDist) {
        bestDist = dist;
        best = k;
      }
    });
    shares[best]!++;
    error += bestDist;
    n++;
  }
  return { error: error / n, shares: shares.map((s) => s / n) };
}

function luminance(pixels: Uint8ClampedArray, i: number): number {
  return 0.2126 * pixels[i]! + 0.7152 * pixels[i + 1]! + 0.0722 * pixels[i + 2]!;
}

function standardDeviation(values: number[]): number {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  return Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
}

/** Standard deviation of the mean luminance of 32x32 blocks: large forms, blind to pixel grain. */
function blockLuminanceSd(d: Decoded): number {
  const block = 32;
  const means: number[] = [];
  for (let by = 0; by + block <= d.height; by += block) {
    for (let bx = 0; bx + block <= d.width; bx += block) {
      let sum = 0;
      for (let y = by; y < by + block; y++) {
        for (let x = bx; x < bx + block; x++) sum += luminance(d.pixels, (y * d.width + x) * 4);
      }
      means.push(sum / (block * block));
    }
  }
  return standardDeviation(means);
}

describe('demo release artwork', function () {
  let first: DemoArtwork[] = [];
  let second: DemoArtwork[] = [];
  let decoded: Decoded[] = [];

  before(async function () {
    first = await paintDemoArtwork();
    second = await paintDemoArtwork();
    decoded = await Promise.all(first.map(decode));
  });

  it('paints byte-identical PNGs on every call', function () {
    expect(second.map((a) => a.id)).to.deep.equal(first.map((a) => a.id));
    first.forEach((a, i) => {
      expect(a.png.equals(second[i]!.png), `${a.id} differs between calls`).to.equal(true);
    });
  });

  it('returns fresh tag and palette arrays on each call, so callers cannot change later results', function () {
    first.forEach((a, i) => {
      expect(a.tags).to.not.equal(second[i]!.tags);
      expect(a.palette).to.not.equal(second[i]!.palette);
    });
  });

  it('paints at least five pieces with unique ids and file names', function () {
    expect(first.length).to.be.at.least(5);
    expect(new Set(first.map((a) => a.id)).size).to.equal(first.length);
    expect(new Set(first.map((a) => a.fileName)).size).to.equal(first.length);
  });

  it('uses lowercase slug ids, non-empty titles and <id>.png file names', function () {
    for (const a of first) {
      expect(a.id).to.match(/^[a-z0-9]+(-[a-z0-9]+)*$/);
      expect(a.title.trim()).to.not.equal('');
      expect(a.fileName).to.equal(`${a.id}.png`);
    }
  });

  it('has exactly one cover, square at 1024x1024', function () {
    const covers = first.filter((a) => a.kind === 'cover');
    expect(covers).to.have.length(1);
    expect([covers[0]!.width, covers[0]!.height]).to.deep.equal([1024, 1024]);
  });

  it('sizes every graphic at 1024x1024 or 1280x720', function () {
    const graphics = first.filter((a) => a.kind === 'graphic');
    expect(graphics.length).to.be.at.least(4);
    for (const a of graphics) {
      expect(`${a.width}x${a.height}`, a.id).to.be.oneOf(['1024x1024', '1280x720']);
    }
  });

  it('encodes PNGs whose signature and IHDR header state the declared size', function () {
    const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    for (const a of first) {
      expect(a.png.subarray(0, 8).equals(signature), `${a.id} signature`).to.equal(true);
      expect(a.png.toString('ascii', 12, 16)).to.equal('IHDR');
      expect(a.png.readUInt32BE(16)).to.equal(a.width);
      expect(a.png.readUInt32BE(20)).to.equal(a.height);
    }
  });

  it('encodes PNGs that decode to the declared size', function () {
    for (const d of decoded) {
      expect([d.width, d.height], d.art.id).to.deep.equal([d.art.width, d.art.height]);
    }
  });

  it('tags every piece with several lowercase prompt words', function () {
    for (const a of first) {
      expect(a.tags.length, a.id).to.be.at.least(5);
      expect(new Set(a.tags).size, `${a.id} repeats a tag`).to.equal(a.tags.length);
      for (const tag of a.tags) expect(tag).to.match(/^[a-z]+(-[a-z]+)*$/);
    }
  });

  it('declares 4-6 distinct #rrggbb palette colours per piece', function () {
    for (const a of first) {
      expect(a.palette.length, a.id).to.be.within(4, 6);
      expect(new Set(a.palette).size, a.id).to.equal(a.palette.length);
      for (const c of a.palette) expect(c).to.match(/^#[0-9a-f]{6}$/);
    }
  });

  it('paints every piece in a different overall colour: mean colours at least 30 RGB units apart', function () {
    for (let i = 0; i < decoded.length; i++) {
      for (let j = i + 1; j < decoded.length; j++) {
        const a = decoded[i]!;
        const b = decoded[j]!;
        expect(distance(a.mean, b.mean), `${a.art.id} vs ${b.art.id}`).to.be.above(30);
      }
    }
  });

  it('paints each piece with a mean colour that is a blend of its declared palette', function () {
    for (const d of decoded) {
      const gap = distanceToBlend(d.mean, d.art.palette.map(hexToRgb));
      expect(gap, `${d.art.id} mean ${d.mean.map(Math.round).join(',')}`).to.be.below(8);
    }
  });

  it('paints each piece with its own palette: pixels sit nearer it than any other piece\'s palette', function () {
    for (const d of decoded) {
      const own = paletteFit(d, d.art.palette.map(hexToRgb)).error;
      for (const other of first) {
        if (other.id === d.art.id) continue;
        const theirs = paletteFit(d, other.palette.map(hexToRgb)).error;
        expect(own, `${d.art.id} fits ${other.id}'s palette better`).to.be.below(theirs);
      }
    }
  });

  it('lists each palette\'s dominant colour first', function () {
    for (const d of decoded) {
      const { shares } = paletteFit(d, d.art.palette.map(hexToRgb));
      expect(shares[0], `${d.art.id} shares ${shares.map((s) => s.toFixed(2)).join(' ')}`).to.equal(Math.max(...shares));
    }
  });

  it('paints images with contrast, not flat fields: pixel luminance deviation above 25', function () {
    for (const d of decoded) {
      const lum: number[] = [];
      for (let i = 0; i < d.pixels.length; i += 4 * 3) lum.push(luminance(d.pixels, i));
      expect(standardDeviation(lum), d.art.id).to.be.above(25);
    }
  });

  it('paints large forms, not uniform noise: 32-pixel block luminance deviation above 15', function () {
    for (const d of decoded) {
      expect(blockLuminanceSd(d), d.art.id).to.be.above(15);
    }
  });
});

// The credit line drawn into every clip and loop: "<title> | <artist> | made in Remixroom"
// in a small, legible corner box, on the yuv420p frames the renderers hand to ffmpeg (the
// live visuals do not carry it). A file that travels on its own says what it is.
//
// Text is drawn with a built-in 5x7 bitmap font (printable ASCII, descenders below), scaled
// by whole pixels with the frame; accents are dropped (é → e) and what has no ASCII form
// (emoji, other scripts) is left out. The box darkens and desaturates what is behind it, so
// white text reads on any picture. The layout is worked out once per render (CreditOverlay);
// each frame then costs a pass over the box only.
import { frameBytes } from './encoder.ts';

/** Glyphs of ' ' (32) to '~' (126): 9 rows of 5 bits each (2 hex digits a row), rows 7–8 the descenders. */
const FONT_HEX = [
  '0000000000000000000404040404000400000a0a000000000000000a1f0a0a0a1f0a0000040f140e051e040000181902040813030000',
  '0c120c0815120d00000404000000000000000204080808040200000804020202040800000004150e15040000000004041f0404000000',
  '000000000c040800000000001f000000000000000000000c0c00000102020408081000000e11131519110e0000040c040404040e0000',
  '0e11010204081f00001f02040201110e000002060a121f020200001f101e0101110e00000608101e11110e00001f0102040808080000',
  '0e11110e11110e00000e11110f01020c0000000c0c000c0c000000000c0c000c0408000002040810080402000000001f001f00000000',
  '0804020102040800000e11010204000400000e11010d15150e00000e11111f11111100001e11111e11111e00000e11101010110e0000',
  '1c12111111121c00001f10101e10101f00001f10101e10101000000e11101711110f00001111111f11111100000e04040404040e0000',
  '0702020202120c00001112141814121100001010101010101f0000111b151511111100001111191513111100000e11111111110e0000',
  '1e11111e10101000000e11111115120d00001e11111e14121100000f10100e01011e00001f04040404040400001111111111110e0000',
  '11111111110a0400001111111515150a000011110a040a1111000011110a0404040400001f01020408101f00000e08080808080e0000',
  '1008080402020100000e02020202020e0000040a110000000000000000000000001f000008040000000000000000000e010f110f0000',
  '1010161911111e000000000e1010110e000001010d1311110f000000000e111f100e00000609081c080808000000000f11110f01110e',
  '10101619111111000004000c0404040e000002000602020202120c1010121418141200000c04040404040e000000001a151515150000',
  '00001619111111000000000e1111110e000000001e11111e10101000000f11110f01010100001619101010000000000f100e011e0000',
  '08081c0808090600000000111111130d000000001111110a0400000000111115150a00000000110a040a11000000001111110f01110e',
  '00001f0204081f0000020404080404020000040404040404040000080404020404080000000008150200000000',
].join('');
const GLYPH_W = 5;
const GLYPH_H = 9;
/** Cap height: the rows above the baseline. */
const CAP_H = 7;
const FIRST = 32;
const LAST = 126;

/** The glyph rows of an ASCII character (a '?' for anything else). */
function glyph(code: number): number[] {
  const i = (code >= FIRST && code <= LAST ? code : 63) - FIRST;
  const rows: number[] = [];
  for (let r = 0; r < GLYPH_H; r++) rows.push(parseInt(FONT_HEX.slice((i * GLYPH_H + r) * 2, (i * GLYPH_H + r) * 2 + 2), 16));
  return rows;
}

/** `text` in the font's characters: accents dropped, dashes and quotes made plain, the rest left out. */
export function creditText(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .replace(/[\u2010-\u2015]/g, '-')
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/\u00b7|\u2022/g, '|')
    .replace(/[^\x20-\x7e]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

const SEPARATOR = ' | ';
const MADE_IN = `${SEPARATOR}made in Remixroom`;

/** The credit of a release: "<title> | <artist> | made in Remixroom", whichever parts it has. */
export function creditLine(release: { title: string; artist: string }): string {
  return [creditText(release.title), creditText(release.artist), 'made in Remixroom'].filter((p) => p.length > 0).join(SEPARATOR);
}

/** Where the credit sits in a frame (pixels; the box is aligned to 2x2 blocks for the chroma planes). */
export interface CreditBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * The credit laid out for frames of one size: the text cut (with "...") to fit, a box in the
 * bottom-left corner, and the text's pixels as a mask over the box.
 */
export class CreditOverlay {
  readonly box: CreditBox;
  readonly text: string;
  readonly #frameWidth: number;
  readonly #frameHeight: number;
  /** 1 where the text is, over the box, row by row. */
  readonly #mask: Uint8Array;

  constructor(line: string, frameWidth: number, frameHeight: number) {
    if (!Number.isInteger(frameWidth) || !Number.isInteger(frameHeight) || frameWidth < 16 || frameHeight < 16 || frameWidth % 2 || frameHeight % 2) {
      throw new RangeError('width and height must be even integers ≥ 16');
    }
    this.#frameWidth = frameWidth;
    this.#frameHeight = frameHeight;
    // 2 px a font pixel at 720p, 3 at 1080p: about 14 px capitals at 720p, a small line that reads on a phone.
    const scale = Math.max(1, Math.round(Math.min(frameWidth, frameHeight) / 360));
    const advance = (GLYPH_W + 1) * scale;
    const pad = 3 * scale;
    const margin = even(Math.round(Math.min(frameWidth, frameHeight) * 0.03));
    const maxChars = Math.max(0, Math.floor((frameWidth - 2 * margin - 2 * pad + scale) / advance));
    let text = creditText(line);
    if (text.length > maxChars) {
      // The title and artist give way first: "made in Remixroom" stays whole while there is room for it.
      const keep = text.endsWith(MADE_IN) && maxChars >= MADE_IN.length + 8 ? MADE_IN : '';
      const head = text.slice(0, text.length - keep.length);
      text = maxChars > 3 ? `${head.slice(0, maxChars - keep.length - 3).replace(/[\s|]+$/, '')}...${keep ? ` ${keep.trimStart()}` : ''}` : '';
    }
    this.text = text;
    const width = even(text.length * advance - scale + 2 * pad);
    const height = even(GLYPH_H * scale + 2 * pad);
    this.box = text ? { x: margin, y: even(frameHeight - margin - height), width, height } : { x: 0, y: 0, width: 0, height: 0 };
    this.#mask = new Uint8Array(this.box.width * this.box.height);
    for (let c = 0; c < text.length; c++) {
      const rows = glyph(text.charCodeAt(c));
      const gx = pad + c * advance;
      for (let r = 0; r < GLYPH_H; r++) {
        const bits = rows[r]!;
        if (!bits) continue;
        for (let k = 0; k < GLYPH_W; k++) {
          if (!(bits & (1 << (GLYPH_W - 1 - k)))) continue;
          for (let dy = 0; dy < scale; dy++) {
            const y = pad + r * scale + dy;
            this.#mask.fill(1, y * this.box.width + gx + k * scale, y * this.box.width + gx + (k + 1) * scale);
          }
        }
      }
    }
  }

  /** Draws the credit into a yuv420p frame (BT.601 limited range, as the engine writes it). */
  drawYuv420(frame: Uint8Array | Uint8ClampedArray): void {
    const { x: bx, y: by, width: bw, height: bh } = this.box;
    if (bw === 0) return;
    const w = this.#frameWidth;
    const h = this.#frameHeight;
    if (frame.length < frameBytes('yuv420p', w, h)) throw new RangeError(`a ${w}x${h} yuv420p frame is ${frameBytes('yuv420p', w, h)} bytes, not ${frame.length}`);
    const mask = this.#mask;
    // Luma: the picture behind darkened to about 30%, the text near white.
    for (let y = 0; y < bh; y++) {
      const row = (by + y) * w + bx;
      const m = y * bw;
      for (let x = 0; x < bw; x++) frame[row + x] = mask[m + x] ? 230 : 16 + (((frame[row + x]! - 16) * 3) / 10);
    }
    // Chroma: halfway to grey, so that the box is a quiet dark and the text white, whatever the colours.
    const cw = w >> 1;
    const uBase = w * h;
    const vBase = uBase + cw * (h >> 1);
    for (let y = by >> 1; y < (by + bh) >> 1; y++) {
      for (let x = bx >> 1; x < (bx + bw) >> 1; x++) {
        const i = y * cw + x;
        frame[uBase + i] = 128 + ((frame[uBase + i]! - 128) >> 1);
        frame[vBase + i] = 128 + ((frame[vBase + i]! - 128) >> 1);
      }
    }
  }
}

function even(n: number): number {
  return n + (n & 1);
}

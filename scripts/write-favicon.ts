// `node scripts/write-favicon.ts`: redraws client/icons/favicon.ico from client/icons/favicon.svg
// (16, 32 and 48 pixels, each a PNG inside the ICO), so that the two stay one picture.
// Browsers that read <link rel="icon"> take the SVG; /favicon.ico is for those that ask for it by name.
import fs from 'node:fs';
import { createCanvas, Image } from '@napi-rs/canvas';

const SIZES = [16, 32, 48];
const svg = new URL('../client/icons/favicon.svg', import.meta.url);
const ico = new URL('../client/icons/favicon.ico', import.meta.url);

const image = new Image();
image.src = fs.readFileSync(svg);
const pngs = SIZES.map((size) => {
  const canvas = createCanvas(size, size);
  canvas.getContext('2d').drawImage(image, 0, 0, size, size);
  return canvas.toBuffer('image/png');
});

// ICONDIR (6 bytes), one ICONDIRENTRY (16 bytes) per image, then the images.
const header = Buffer.alloc(6 + 16 * SIZES.length);
header.writeUInt16LE(0, 0);
header.writeUInt16LE(1, 2);
header.writeUInt16LE(SIZES.length, 4);
let offset = header.length;
SIZES.forEach((size, i) => {
  const entry = 6 + 16 * i;
  header.writeUInt8(size, entry);
  header.writeUInt8(size, entry + 1);
  header.writeUInt16LE(1, entry + 4); // colour planes
  header.writeUInt16LE(32, entry + 6); // bits per pixel
  header.writeUInt32LE(pngs[i]!.length, entry + 8);
  header.writeUInt32LE(offset, entry + 12);
  offset += pngs[i]!.length;
});
fs.writeFileSync(ico, Buffer.concat([header, ...pngs]));
console.log(`wrote ${ico.pathname} (${offset} bytes)`);

// A QR code of a link, drawn on a canvas (no markup strings: the page's CSP
// stays strict), so that people in the same room can join from a phone.
import qrcode from 'qrcode-generator';

/** A canvas showing `text` as a QR code, `cells` px per module, with the quiet zone the standard asks for. */
export function qrCanvas(text: string, label: string, cellPx = 4): HTMLCanvasElement {
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const modules = qr.getModuleCount();
  const quiet = 4;
  const side = (modules + quiet * 2) * cellPx;
  const canvas = document.createElement('canvas');
  canvas.width = side;
  canvas.height = side;
  canvas.className = 'qr';
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', label);
  const ctx = canvas.getContext('2d');
  if (!ctx) return canvas;
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, side, side);
  ctx.fillStyle = '#000000';
  for (let r = 0; r < modules; r++) {
    for (let c = 0; c < modules; c++) {
      if (qr.isDark(r, c)) ctx.fillRect((c + quiet) * cellPx, (r + quiet) * cellPx, cellPx, cellPx);
    }
  }
  return canvas;
}

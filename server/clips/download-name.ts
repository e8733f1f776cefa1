// The names downloads are saved under: "<artist> - <title> (Remixroom clip 0m42s-1m12s).mp4"
// rather than an id, made safe for every file system (no path separators, no control or
// format characters, none of Windows' reserved characters, no leading dots, at most
// MAX_NAME_BYTES in UTF-8), and the Content-Disposition header that carries one: an ASCII
// `filename` for old clients and the exact name as RFC 5987/6266 `filename*`.

/** Well under the 255-byte limit of common file systems, with room for a browser's " (1)". */
export const MAX_NAME_BYTES = 200;
/** The artist and title part, before the "(Remixroom …)" and the extension. */
const MAX_STEM_BYTES = 150;

/** What a download is, in the words of its name. */
export type DownloadWhat =
  | { kind: 'clip'; fromSec: number; toSec: number; vertical?: boolean }
  | { kind: 'loop'; seconds: number }
  | { kind: 'full' }
  | { kind: 'still' };

/** Text a title or an artist may hold, as one safe piece of a file name (possibly empty). */
export function safeNamePart(text: string): string {
  return (
    text
      .normalize('NFC')
      // Control and format characters (newlines, NUL, bidi overrides that could disguise an extension),
      // but the joiners that hold an emoji or a script's letters together.
      .replace(/(?:[\p{Cc}\p{Zl}\p{Zp}]|(?![\u200c\u200d])\p{Cf})+/gu, ' ')
      // Path separators and what Windows refuses in a name, quotes included.
      .replace(/[/\\:*?"<>|]+/g, '-')
      .replace(/['`]/g, '’')
      .replace(/\s+/g, ' ')
      // No hidden files, no ".." anywhere it could matter, no trailing dots or spaces (Windows drops them).
      .replace(/\.{2,}/g, '.')
      .replace(/^[\s.-]+|[\s.]+$/g, '')
  );
}

/** `text` cut to at most `maxBytes` of UTF-8, between whole characters as a reader sees them. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let out = '';
  let bytes = 0;
  for (const { segment } of new Intl.Segmenter('en', { granularity: 'grapheme' }).segment(text)) {
    const b = Buffer.byteLength(segment);
    if (bytes + b > maxBytes) break;
    out += segment;
    bytes += b;
  }
  return out.replace(/[\s.-]+$/, '');
}

/** "1m12s" */
function minSec(totalSec: number): string {
  const s = Math.max(0, Math.round(totalSec));
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** The name a render's file is saved under; `ext` with its dot (".mp4"). */
export function downloadName(release: { artist: string; title: string }, what: DownloadWhat, ext: string): string {
  const artist = safeNamePart(release.artist);
  const title = safeNamePart(release.title);
  const stem = truncateUtf8(artist && title ? `${artist} - ${title}` : artist || title, MAX_STEM_BYTES);
  const label =
    what.kind === 'clip'
      ? `Remixroom ${what.vertical ? 'vertical clip' : 'clip'} ${minSec(what.fromSec)}-${minSec(what.toSec)}`
      : what.kind === 'loop'
        ? `Remixroom visuals loop ${Math.round(what.seconds * 10) / 10}s`
        : what.kind === 'full'
          ? 'Remixroom remix'
          : 'Remixroom picture';
  const safeExt = /^(\.[a-z0-9]{1,8})+$/.test(ext) ? ext : '';
  return stem ? `${stem} (${label})${safeExt}` : `${label}${safeExt}`;
}

/** An ASCII stand-in for `name` (accents dropped, anything else outside printable ASCII gone). */
export function asciiFallback(name: string): string {
  const ascii = name
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .replace(/[^\x20-\x7e]+/g, '')
    // Characters that would need escaping in a quoted-string, or that some clients decode.
    .replace(/["\\%]/g, '')
    .replace(/\s+/g, ' ')
    .replace(/\(\s+/g, '(')
    // A name whose artist or title had no ASCII at all.
    .replace(/\s-\s*\(/, ' (')
    .replace(/^[\s.-]+/, '')
    .replace(/^\((Remixroom[^)]*)\)/, '$1')
    .trim();
  return ascii || 'remixroom-download';
}

/** RFC 5987 attr-chars stay; everything else is percent-encoded UTF-8. */
function encodeRfc5987(text: string): string {
  return encodeURIComponent(text).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** `attachment; filename="<ascii>"; filename*=UTF-8''<exact>` for a name made by downloadName (made safe again here). */
export function contentDisposition(name: string): string {
  const safe = truncateUtf8(safeNamePart(name), MAX_NAME_BYTES) || 'remixroom-download';
  return `attachment; filename="${asciiFallback(safe)}"; filename*=UTF-8''${encodeRfc5987(safe)}`;
}

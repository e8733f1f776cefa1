// The fan's web app: the files that `npm run build:client` wrote into client/dist.
// Hashed assets under /assets are cached for good; the page itself (/ and the join
// path /r/:roomId, which join links point at) is never cached, so that a new build
// is picked up at once. Nothing else outside client/dist is served but the two
// icon files of client/icons (/favicon.ico, /favicon.svg): assets are looked up by
// a plain file name, never by a path.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Router, type Response } from 'express';
import { ROOM_ID } from '../rooms/room-manager.ts';

export const CLIENT_DIST_DIR = fileURLToPath(new URL('../../client/dist', import.meta.url));
/** The site's icon, kept in the repository (no build needed): an SVG for <link rel="icon">, an ICO for /favicon.ico. */
export const CLIENT_ICONS_DIR = fileURLToPath(new URL('../../client/icons', import.meta.url));
const ICONS: Record<string, { file: string; type: string }> = {
  '/favicon.ico': { file: 'favicon.ico', type: 'image/x-icon' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

const ASSET_NAME = /^[\w-]+(\.[\w-]+)*\.(js|css|map|txt|png|svg|ico|woff2)$/;
const CONTENT_TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  map: 'application/json; charset=utf-8',
  txt: 'text/plain; charset=utf-8',
  png: 'image/png',
  svg: 'image/svg+xml',
  ico: 'image/x-icon',
  woff2: 'font/woff2',
};
/** esbuild's content hash in a name ("app-5XQ2LJ3K.js"): such a file never changes. */
const HASHED = /-[A-Z0-9]{8}\./;

const PAGE_SECURITY: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  // The invite rides in the URL's fragment, which no browser sends; this keeps the path out of referrers too.
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
};

export function clientRoutes(opts: { distDir?: string } = {}): Router {
  const dist = path.resolve(opts.distDir ?? CLIENT_DIST_DIR);
  const assets = path.join(dist, 'assets');
  const router = Router();

  router.get('/assets/:name', async (req, res, next) => {
    const name = req.params.name;
    const ext = ASSET_NAME.exec(name)?.[2];
    if (!ext || name.includes('..')) return next();
    const file = path.join(assets, name);
    // Belt and braces: the name pattern already rules out separators.
    if (path.dirname(file) !== assets) return next();
    // The build wrote .br and .gz beside scripts and styles; the plain file is the fallback.
    const accepted = String(req.headers['accept-encoding'] ?? '');
    const encodings = ext === 'js' || ext === 'css' ? PRECOMPRESSED.filter((e) => e.token.test(accepted)) : [];
    let body: Buffer | null = null;
    let encoding: string | null = null;
    for (const e of [...encodings, null]) {
      body = await readIfThere(e ? `${file}${e.suffix}` : file);
      if (body) {
        encoding = e?.name ?? null;
        break;
      }
    }
    if (!body) return next();
    res.set({
      'content-type': CONTENT_TYPES[ext] ?? 'application/octet-stream',
      'cache-control': HASHED.test(name) ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
      vary: 'accept-encoding',
      ...(encoding ? { 'content-encoding': encoding } : {}),
    });
    res.send(body);
  });

  for (const [route, icon] of Object.entries(ICONS)) {
    router.get(route, async (_req, res, next) => {
      const body = await readIfThere(path.join(CLIENT_ICONS_DIR, icon.file));
      if (!body) return next();
      // Not content-hashed, so cached for a day rather than for good; express adds an ETag for revalidation.
      res.set({ 'content-type': icon.type, 'cache-control': 'public, max-age=86400', 'x-content-type-options': 'nosniff' });
      res.send(body);
    });
  }

  router.get('/', (_req, res) => sendPage(res, dist));
  router.get('/r/:roomId', (req, res, next) => {
    if (!ROOM_ID.test(req.params.roomId)) return next();
    return sendPage(res, dist);
  });
  return router;
}

const PRECOMPRESSED = [
  { name: 'br', suffix: '.br', token: /\bbr\b/ },
  { name: 'gzip', suffix: '.gz', token: /\bgzip\b/ },
];

async function readIfThere(file: string): Promise<Buffer | null> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR') return null;
    throw err;
  }
}

async function sendPage(res: Response, dist: string): Promise<void> {
  let html: Buffer;
  try {
    html = await fsp.readFile(path.join(dist, 'index.html'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    res
      .status(503)
      .set({ 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'retry-after': '5' })
      .send('The web app is not built on this server. Run "npm run build:client" (npm start does it for you) and reload.\n');
    return;
  }
  res.status(200).set({ 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache', ...PAGE_SECURITY }).send(html);
}

// Bundles the fan's web app for the browser with esbuild: client/src/main.ts (and
// the shared/ modules it imports) into client/dist/assets,
// with content-hashed names so that they can be cached for good, and writes
// client/dist/index.html pointing at them. `npm run build:client` runs it; the
// server serves client/dist (server/http/client-routes.ts).
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import * as esbuild from 'esbuild';

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);

export const CLIENT_DIR = path.dirname(fileURLToPath(import.meta.url));
export const DIST_DIR = path.join(CLIENT_DIR, 'dist');
const ENTRY = path.join(CLIENT_DIR, 'src', 'main.ts');
const STYLES = path.join(CLIENT_DIR, 'src', 'styles.css');
const TEMPLATE = path.join(CLIENT_DIR, 'index.html');

export interface BuiltClient {
  distDir: string;
  script: string;
  styles: string | null;
}

/**
 * Builds into a fresh folder beside client/dist and swaps it in, so that a server
 * serving client/dist never sees half a build.
 */
export async function buildClient(opts: { minify?: boolean; outDir?: string } = {}): Promise<BuiltClient> {
  const outDir = opts.outDir ?? DIST_DIR;
  const staging = `${outDir}.building-${process.pid}-${Date.now()}`;
  await fsp.rm(staging, { recursive: true, force: true });
  try {
    const result = await esbuild.build({
      entryPoints: { app: ENTRY, app_styles: STYLES },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: ['chrome110', 'firefox115', 'safari16'],
      outdir: path.join(staging, 'assets'),
      entryNames: '[name]-[hash]',
      assetNames: '[name]-[hash]',
      // The mediasoup listener is loaded only in rooms that stream through mediasoup.
      splitting: true,
      chunkNames: 'chunk-[hash]',
      minify: opts.minify ?? true,
      sourcemap: 'linked',
      metafile: true,
      legalComments: 'linked',
      logLevel: 'silent',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    const outputs = Object.keys(result.metafile.outputs).map((f) => path.basename(f));
    const script = outputs.find((f) => /^app-[\w]+\.js$/.test(f));
    const styles = outputs.find((f) => /^app_styles-[\w]+\.css$/.test(f)) ?? null;
    if (!script) throw new Error(`the client build made no app script (outputs: ${outputs.join(', ')})`);
    // Compressed once here, so that serving costs the server nothing per request.
    for (const file of outputs.filter((f) => /\.(js|css)$/.test(f))) {
      const full = path.join(staging, 'assets', file);
      const bytes = await fsp.readFile(full);
      await fsp.writeFile(`${full}.br`, await brotli(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 9 } }));
      await fsp.writeFile(`${full}.gz`, await gzip(bytes, { level: 9 }));
    }
    const template = await fsp.readFile(TEMPLATE, 'utf8');
    const html = template
      .replace('<!--styles-->', styles ? `<link rel="stylesheet" href="/assets/${styles}">` : '')
      .replace('<!--script-->', `<script type="module" src="/assets/${script}"></script>`);
    await fsp.writeFile(path.join(staging, 'index.html'), html);
    const old = `${outDir}.old-${process.pid}-${Date.now()}`;
    await fsp.rename(outDir, old).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await fsp.rename(staging, outDir);
    await fsp.rm(old, { recursive: true, force: true });
    return { distDir: outDir, script, styles };
  } catch (err) {
    await fsp.rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/** Whether a built app is there (index.html written last, so its presence means a whole build). */
export async function clientBuilt(outDir = DIST_DIR): Promise<boolean> {
  return fsp.access(path.join(outDir, 'index.html')).then(
    () => true,
    () => false,
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = performance.now();
  const built = await buildClient({ minify: !process.argv.includes('--dev') });
  process.stdout.write(`client built into ${path.relative(process.cwd(), built.distDir) || built.distDir} (${built.script}) in ${Math.round(performance.now() - started)} ms\n`);
}

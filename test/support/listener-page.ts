// The listener page of the browser tests (test/sfu/page/listener-page.ts),
// bundled with esbuild and served on 127.0.0.1. It joins a stream through the
// same listener modules the web app uses and measures what arrives.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const PAGE_ENTRY = fileURLToPath(new URL('../sfu/page/listener-page.ts', import.meta.url));

export interface ServedPage {
  url: string;
  close(): Promise<void>;
}

async function bundlePage(): Promise<string> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [PAGE_ENTRY],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

export async function serveListenerPage(): Promise<ServedPage> {
  const script = await bundlePage();
  const html = '<!doctype html><meta charset="utf-8"><title>listener</title><script type="module" src="/listener.js"></script>';
  const server = http.createServer((req, res) => {
    if (req.url === '/listener.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

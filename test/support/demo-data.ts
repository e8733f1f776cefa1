// Making the demo release takes a few seconds, so a test run makes it once into a
// template DATA_DIR and every test server starts from a linked copy of it.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { findNativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { ensureDemoRelease } from '../../server/catalog/demo-release.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { linkTree, tempDir } from './temp.ts';

let template: Promise<string> | null = null;
const TEMPLATE_DIR = path.join(os.tmpdir(), `remixroom-demo-template-${process.pid}`);

export function demoTemplate(): Promise<string> {
  template ??= (async () => {
    const layout = new DataLayout(TEMPLATE_DIR);
    await fsp.mkdir(layout.tmpDir, { recursive: true });
    const store = await SqliteStore.open(layout.database);
    try {
      const native = await findNativeFfmpeg(null);
      await ensureDemoRelease({ store, layout, ffmpeg: native?.ffmpeg ?? null, log: pino({ level: 'silent' }) });
    } finally {
      await store.close();
    }
    return TEMPLATE_DIR;
  })();
  return template;
}

/** A DATA_DIR that already holds the demo release. */
export async function demoDataDir(): Promise<{ path: string; remove(): Promise<void> }> {
  const from = await demoTemplate();
  const dir = await tempDir('data');
  await linkTree(from, dir.path);
  return dir;
}

export async function removeDemoTemplate(): Promise<void> {
  template = null;
  await fsp.rm(TEMPLATE_DIR, { recursive: true, force: true });
}

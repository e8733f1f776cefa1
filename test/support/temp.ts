import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** A fresh folder under the system temp dir; remove it with the returned function. */
export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `remixroom-${prefix}-`));
  return { path: dir, remove: () => fsp.rm(dir, { recursive: true, force: true }) };
}

/** Copies a tree, hard-linking files (stems are large and never written in place). */
export async function linkTree(from: string, to: string): Promise<void> {
  await fsp.mkdir(to, { recursive: true });
  for (const entry of await fsp.readdir(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) await linkTree(src, dst);
    else if (entry.name.startsWith('remixroom.sqlite')) await fsp.copyFile(src, dst);
    else await fsp.link(src, dst).catch(() => fsp.copyFile(src, dst));
  }
}

export function exists(p: string): boolean {
  return fs.existsSync(p);
}

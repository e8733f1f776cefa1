// Required external components (ffmpeg, redis-server, …): missing in CI is a
// failure; missing on a developer's machine skips the suite and says why.
import fs from 'node:fs';
import path from 'node:path';

/** Whether `name` (a bare command looked up on PATH, or a path) is an executable file. */
export function commandExists(name: string): boolean {
  const candidates = name.includes('/') ? [name] : (process.env['PATH'] ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, name));
  return candidates.some((file) => {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

/** Call from a `before` hook. Throws in CI (CI=true), otherwise logs the reason and skips the suite. */
export function requireComponent(name: string, available: boolean, ctx: Mocha.Context): void {
  if (available) return;
  if (process.env['CI'] === 'true') {
    throw new Error(`${name} is required but was not found; CI must install it (e.g. apt-get install -y ${name})`);
  }
  const suite = ctx.test?.parent?.fullTitle() || 'this suite';
  console.warn(`      ⚠ ${name} not found: skipping "${suite}" (install ${name} to run it; in CI its absence fails the run)`);
  ctx.skip();
}

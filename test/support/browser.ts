// Headless Chromium for tests, driven by playwright-core against the system's
// /usr/bin/chromium (playwright never downloads a browser here). Each launch
// gets a fresh profile folder, removed on close.
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { commandExists } from './components.ts';
import { tempDir } from './temp.ts';

export const CHROMIUM_COMMAND = 'chromium';

/** Where Chromium is: on PATH, else Debian's path. */
export function chromiumPath(): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, CHROMIUM_COMMAND);
    if (commandExists(file)) return file;
  }
  return commandExists('/usr/bin/chromium') ? '/usr/bin/chromium' : null;
}

export function chromiumAvailable(): boolean {
  return chromiumPath() !== null;
}

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

export interface LaunchedBrowser {
  context: BrowserContext;
  /** Closes the browser and removes its profile; safe to call twice. */
  close(): Promise<void>;
}

export async function launchChromium(extraArgs: string[] = []): Promise<LaunchedBrowser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error('chromium is not installed');
  const profile = await tempDir('chromium');
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile.path, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
    });
  } catch (err) {
    await profile.remove();
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    context,
    close() {
      closing ??= context.close().finally(() => profile.remove());
      return closing;
    },
  };
}

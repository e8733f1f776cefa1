// The visual model as a fan sees it, in real Chromium against a real server: the demo
// release gets a model (tiny budget, real training); the host's prompt draws a texture
// the model generated, which the page fetches and draws; "what your prompt did" says
// so and links to the training record; the host's panel says what the model was
// trained on. A screenshot of the room is saved (the path is printed) to look at.
import { expect } from 'chai';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { buildClient } from '../../client/build.ts';
import type { Hyperparameters } from '../../media/visuals/model/types.ts';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { DEFAULT_VISUAL_MODEL_MIX } from '../../server/config.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { openRoomAsHost, until } from '../support/web-app-page.ts';

const TINY: Partial<Hyperparameters> = { levels: [8, 6], code: 4, noise: [4, 2], scales: [[1, 1, 4], [1, 3, 8], [2, 3, 8]], banks: 2, quantiles: 256, batch: 2, crop: 16, trainScale: 32, dilations: [1, 1], margin: 1 };

type HookWindow = Window & { remixroom?: { visuals(): { paramsKey: string; framesDrawn: number; status: string; generatedLoaded: number } } };

describe('web app in Chromium: the visual model', function () {
  this.timeout(120_000);
  let t: TestServer;
  let browser: LaunchedBrowser | null = null;
  let page: Page;
  const pageErrors: string[] = [];

  before(async function () {
    requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
    const [server] = await Promise.all([startTestServer({ visualModel: { train: 'off', steps: 40, seed: 1, mix: DEFAULT_VISUAL_MODEL_MIX } }, { visualModels: { hyperparameters: TINY, pollMs: 60_000 } }), buildClient()]);
    t = server;
    // A model of the demo's own artwork, newer than any shipped one: the one rooms use.
    await t.server.visualModels.train(DEMO_RELEASE_ID);
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    await browser?.close();
    await t?.close();
  });

  it('a prompt draws a texture the model generated; the page says so, links the record, and the host sees what it was trained on', async () => {
    const record = (await t.server.visualModels.current(DEMO_RELEASE_ID))!;
    await openRoomAsHost(page, t.url, 'Hana');
    await page.waitForFunction(() => ((window as HookWindow).remixroom?.visuals().framesDrawn ?? 0) > 0, undefined, { timeout: 15_000 });
    await page.getByLabel('Describe what the visuals should become').fill('glowing embers, slow drift');
    await page.getByRole('button', { name: 'Send prompt' }).click();
    await page.locator('.prompt-result', { hasText: '→' }).waitFor({ timeout: 10_000 });
    const v = await until('the generated texture loaded and drawn', 10_000, async () => {
      const x = await page.evaluate(() => (window as HookWindow).remixroom!.visuals());
      return x.generatedLoaded >= 1 && x.paramsKey.includes('gen-') ? x : null;
    });
    expect(v.status).to.equal('drawing');
    expect(await page.locator('.prompt-result').textContent()).to.contain('by a model trained only on it');
    const link = page.locator('.prompt-result a.model-record');
    expect(await link.getAttribute('href')).to.equal(`/api/releases/${DEMO_RELEASE_ID}/visual-model/${record.modelId}`);
    expect(await page.locator('.visual-caption a.model-record').count()).to.equal(1);
    // The record the link names is served, and says what went in.
    const served = (await (await fetch(`${t.url}/api/releases/${DEMO_RELEASE_ID}/visual-model/${record.modelId}`)).json()) as { assets: unknown[] };
    expect(served.assets.length).to.equal(record.assets.length);
    // The host's panel.
    const panel = page.locator('.model-panel');
    await panel.locator('.model-status', { hasText: 'Trained on' }).waitFor({ timeout: 10_000 });
    expect(await panel.locator('.model-assets li').count()).to.equal(record.assets.length);
    const shots = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-visual-model-shots-'));
    console.log(`        ↳ screenshots: ${shots}`);
    await page.screenshot({ path: path.join(shots, 'room-with-model.png'), fullPage: true });
    expect(pageErrors).to.deep.equal([]);
  });
});

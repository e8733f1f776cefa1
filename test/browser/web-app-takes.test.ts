// Undo and takes in real Chromium against a real server. Two members: Ctrl+Z takes back
// only one's own move (the other's stays, on both pages), a fader drag is one step, an
// undo the server refuses (the host locked that stem since) says so; the host saves a
// take, both pages list it, and returning to it changes the mixer on every page and
// what the live audio plays. Screenshots are saved under the OS temp dir (path printed).
import { expect } from 'chai';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { buildClient } from '../../client/build.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { SFU_ADAPTERS, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { until, connected, openRoomAsHost } from '../support/web-app-page.ts';

interface Hooks {
  state(): { mix: { stems: Record<string, { gainDb: number; mute: boolean }> } } | null;
  connection(): { sync: string; synced: boolean; socket: string };
  audio(): { state: string; error: string | null };
  audioStats(): Promise<{ packetsReceived: number; totalAudioEnergy: number }>;
  audioLevel(): number;
}
type HookWindow = Window & { remixroom?: Hooks };

/** Waits until the control `sel` shows `value` (its data-value) on every page given; says what they show instead. */
async function allShow(pages: Page[], sel: string, value: string): Promise<void> {
  for (const page of pages) {
    try {
      await page.waitForFunction(([s, v]) => document.querySelector<HTMLInputElement>(s!)?.dataset['value'] === v, [sel, value] as const, { timeout: 10_000 });
    } catch (err) {
      const seen = await Promise.all(pages.map((p) => p.evaluate((s) => document.querySelector<HTMLInputElement>(s)?.dataset['value'], sel)));
      throw new Error(`${sel} never showed ${value}: ${JSON.stringify(seen)} (${(err as Error).message.split('\n')[0]})`);
    }
  }
}

for (const adapter of SFU_ADAPTERS) {
  describe(adapterTitle('web app in Chromium: undo of one’s own moves, and takes', adapter), function () {
    this.timeout(150_000);
    let t: TestServer;
    let browser: LaunchedBrowser | null = null;
    let a: Page;
    let b: Page;
    let shots = '';
    const pageErrors: string[] = [];

    before(async function () {
      await requireSfuAdapter(adapter, this);
      requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
      const [server] = await Promise.all([startTestServer({}, { adapter }), buildClient()]);
      t = server;
      shots = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-takes-shots-'));
      console.log(`        ↳ screenshots: ${shots}`);
      browser = await launchChromium();
      const open = async (label: string) => {
        const p = await browser!.context.newPage();
        p.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
        return p;
      };
      a = await open('A');
      b = await open('B');
      await openRoomAsHost(a, t.url, 'Ana');
      const joinUrl = await a.locator('#share-link').inputValue();
      await b.goto(joinUrl);
      await b.getByLabel(/display name/).fill('Ben');
      await b.getByRole('button', { name: 'Join' }).click();
      await connected(b);
    });

    after(async () => {
      await browser?.close();
      await t?.close();
    });

    it('Ctrl+Z undoes A’s own move only: A’s drums go back, B’s bass stays, on both pages; redo brings it again', async () => {
      const undoA = a.locator('#undo');
      expect(await undoA.isDisabled(), 'nothing to undo yet').to.equal(true);
      const box = await undoA.boundingBox();
      expect(box!.width).to.be.at.least(24);
      expect(box!.height).to.be.at.least(24);

      await a.locator('#stem-drums-gainDb').focus();
      await a.keyboard.press('Home');
      await allShow([a, b], '#stem-drums-gainDb', '-60');
      await b.locator('#stem-bass-gainDb').focus();
      await b.keyboard.press('End');
      await allShow([a, b], '#stem-bass-gainDb', '6');
      expect(await undoA.isDisabled()).to.equal(false);

      await a.keyboard.press('Control+z');
      await allShow([a, b], '#stem-drums-gainDb', '0');
      await allShow([a, b], '#stem-bass-gainDb', '6');
      expect(await undoA.isDisabled(), 'A’s only step is undone').to.equal(true);
      expect(await a.locator('#redo').isDisabled()).to.equal(false);

      await a.keyboard.press('Control+Shift+Z');
      await allShow([a, b], '#stem-drums-gainDb', '-60');
      await a.locator('#undo').click();
      await allShow([a, b], '#stem-drums-gainDb', '0');
      await allShow([a, b], '#stem-bass-gainDb', '6');
      await a.locator('.mixer-panel').screenshot({ path: path.join(shots, '1-undo-a.png') });
    });

    it('a fader drag is one undo step', async () => {
      const fader = a.locator('#stem-lead-gainDb');
      await fader.scrollIntoViewIfNeeded();
      const r = (await fader.boundingBox())!;
      const y = r.y + r.height / 2;
      await a.mouse.move(r.x + r.width * 0.9, y);
      await a.mouse.down();
      for (let i = 1; i <= 12; i++) {
        await a.mouse.move(r.x + r.width * (0.9 - i * 0.05), y);
        await new Promise((res) => setTimeout(res, 40));
      }
      await a.mouse.up();
      const dragged = await a.evaluate(() => document.querySelector<HTMLInputElement>('#stem-lead-gainDb')!.dataset['value']);
      expect(Number(dragged)).to.be.below(-20);
      await allShow([b], '#stem-lead-gainDb', dragged!);
      await a.keyboard.press('Control+z');
      await allShow([a, b], '#stem-lead-gainDb', '0');
    });

    it('an undo the server refuses, because the host locked that stem since, says so and changes nothing', async () => {
      await b.locator('#stem-harmony-gainDb').focus();
      await b.keyboard.press('Home');
      await allShow([a, b], '#stem-harmony-gainDb', '-60');
      await a.locator('#open-harmony').setChecked(false);
      await b.waitForFunction(() => document.querySelector<HTMLInputElement>('#stem-harmony-gainDb')?.disabled === true, undefined, { timeout: 10_000 });
      await b.locator('#undo').click();
      await b.locator('.history-result', { hasText: 'Undo not applied' }).waitFor({ timeout: 10_000 });
      expect(await b.locator('.history-result').textContent()).to.match(/Undo not applied: The host has locked the harmony\./);
      await allShow([a, b], '#stem-harmony-gainDb', '-60');
      await b.locator('.mixer-panel').screenshot({ path: path.join(shots, '2-undo-refused-b.png') });
      await a.locator('#open-harmony').setChecked(true);
    });

    it('the host saves a take; both pages list it; returning to it changes the mixer on every page and what the live audio plays', async () => {
      // The take: every stem muted, drums at -60.
      const mutes = a.locator('input[data-control$=".mute"]');
      const muteAll = async (checked: boolean) => {
        for (let i = 0; i < (await mutes.count()); i++) await mutes.nth(i).setChecked(checked);
      };
      await a.locator('#stem-drums-gainDb').focus();
      await a.keyboard.press('Home');
      await muteAll(true);
      await allShow([b], '#stem-drums-gainDb', '-60');
      await b.waitForFunction(() => Object.values((window as HookWindow).remixroom!.state()!.mix.stems).every((s) => s.mute), undefined, { timeout: 10_000 });

      expect(await b.locator('#take-name').isDisabled(), 'a remixer may not, unless the host allows it').to.equal(true);
      await a.locator('#take-name').fill('Silence');
      await a.getByRole('button', { name: 'Save take' }).click();
      await a.locator('.takes-result', { hasText: 'Saved “Silence”' }).waitFor({ timeout: 10_000 });
      for (const p of [a, b]) await p.locator('#takes-list li', { hasText: 'Silence' }).waitFor({ timeout: 10_000 });
      // A name too long for a take is refused in words, and nothing is saved.
      await a.locator('#take-name').evaluate((el: HTMLInputElement) => el.removeAttribute('maxlength'));
      await a.locator('#take-name').fill('x'.repeat(61));
      await a.getByRole('button', { name: 'Save take' }).click();
      await a.locator('.takes-result', { hasText: 'Not saved' }).waitFor({ timeout: 10_000 });
      expect(await a.locator('#takes-list li').count()).to.equal(1);

      // Everyone moves on: unmuted, drums back up, and playing.
      await muteAll(false);
      await a.locator('#stem-drums-gainDb').dblclick();
      await allShow([a, b], '#stem-drums-gainDb', '0');
      await a.getByRole('button', { name: 'Play the room' }).click();
      await b.waitForFunction(() => document.querySelector('.play')?.getAttribute('aria-pressed') === 'true', undefined, { timeout: 10_000 });
      await b.getByRole('button', { name: /Start audio/ }).click();
      await until('packets of the live mix', 25_000, async () => {
        const s = await b.evaluate(() => (window as HookWindow).remixroom!.audioStats());
        return s.packetsReceived > 20 && s.totalAudioEnergy > 0 ? s : null;
      });
      const level = async () => {
        let peak = 0;
        for (let i = 0; i < 10; i++) {
          peak = Math.max(peak, await b.evaluate(() => (window as HookWindow).remixroom!.audioLevel()));
          await new Promise((r) => setTimeout(r, 100));
        }
        return peak;
      };
      const playing = await until('B to hear the mix', 15_000, async () => {
        const l = await level();
        return l > 0.01 ? l : null;
      });

      await a.getByRole('button', { name: 'Return the room to “Silence”' }).click();
      await a.locator('.takes-result', { hasText: 'The room is back to “Silence”' }).waitFor({ timeout: 10_000 });
      await allShow([a, b], '#stem-drums-gainDb', '-60');
      for (const p of [a, b]) {
        await p.waitForFunction(() => [...document.querySelectorAll<HTMLInputElement>('input[data-control$=".mute"]')].every((m) => m.checked), undefined, { timeout: 10_000 });
      }
      const quiet = await until('B to hear the take (all muted) as silence', 20_000, async () => {
        const l = await level();
        return l < playing / 20 ? { l } : null;
      });
      console.log(`        ↳ heard on B: playing ${playing.toFixed(3)}, after returning to the muted take ${quiet.l.toFixed(4)}`);
      await a.locator('.mixer-panel').screenshot({ path: path.join(shots, '3-takes-host.png') });
      await b.locator('.mixer-panel').screenshot({ path: path.join(shots, '4-takes-remixer.png') });
    });

    it('no page threw an uncaught error', () => {
      expect(pageErrors).to.deep.equal([]);
    });
  });
}

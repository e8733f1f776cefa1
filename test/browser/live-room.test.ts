// A fan hears the room's joint mix in real Chromium, and hears it change when
// another member changes the room: muting the drums takes the hats out of the
// top of the spectrum, soloing the bass leaves only the bottom. The page joins
// through the same listener module the web app uses; its signaling goes over
// the member's socket.io connection to a real server (here held by the test,
// in Node, on the page's behalf), the remixer is a stock WebsocketProvider.
import { expect } from 'chai';
import type { Page } from 'playwright-core';
import type * as Y from 'yjs';
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/socket-events.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { serveListenerPage, type ServedPage } from '../support/listener-page.ts';
import { connectMember, joinAs, openRoom, stemMap, type Member, type OpenedRoom } from '../support/room-clients.ts';
import { SFU_ADAPTERS, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import type { ReceivedStats } from '../sfu/page/listener-page.ts';
import { until } from '../support/web-app-page.ts';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

/** low: kick and bass; mid; presence; air: hats and shakers (the drums). */
const BAND_EDGES = [30, 200, 1000, 5000, 16000];
const LOW = 0;
const PRESENCE = 2;
const AIR = 3;

function report(label: string, figures: Record<string, unknown>): void {
  console.log(`        ↳ ${label}: ${JSON.stringify(figures, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v))}`);
}

for (const adapter of SFU_ADAPTERS) {
  describe(adapterTitle('live room in Chromium: the joint mix, and members’ changes heard', adapter), function () {
    this.timeout(120_000);
    let t: TestServer;
    let room: OpenedRoom;
    let browser: LaunchedBrowser | null = null;
    let served: ServedPage | null = null;
    let page: Page;
    let listenerSocket: Client | null = null;
    let remixer: Member | null = null;

    before(async function () {
      await requireSfuAdapter(adapter, this);
      requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
      t = await startTestServer({}, { adapter });
      room = await openRoom(t.url);
      served = await serveListenerPage();
      browser = await launchChromium();
      const { token } = await joinAs(t.url, room, 'listener', 'Fan');
      listenerSocket = io(t.url, { auth: { roomId: room.roomId, token }, transports: ['websocket'], reconnection: false });
      await new Promise<void>((resolve, reject) => {
        listenerSocket!.once('connect', () => resolve());
        listenerSocket!.once('connect_error', reject);
      });
      const remixerToken = (await joinAs(t.url, room, 'remixer', 'Mixer')).token;
      remixer = await connectMember(t.url, room.roomId, remixerToken);
      page = await browser.context.newPage();
      await page.exposeFunction('sfuSignal', async (_label: string, message: unknown) => {
        const r = (await (listenerSocket!.timeout(10_000).emitWithAck as (ev: string, m: unknown) => Promise<unknown>)('stream:signal', message)) as
          | { ok: true; signal: unknown }
          | { ok: false; refusal: { code: string; message: string } };
        if (!r.ok) throw new Error(`signaling refused: ${r.refusal.code}: ${r.refusal.message}`);
        return r.signal;
      });
      await page.goto(served.url);
      await page.waitForFunction(() => typeof window.harness === 'object');
    });

    after(async () => {
      await page?.close().catch(() => undefined);
      await browser?.close();
      await served?.close();
      listenerSocket?.disconnect();
      remixer?.destroy();
      await t?.close();
    });

    const stats = (): Promise<ReceivedStats> => page.evaluate(() => window.harness.stats('fan'));
    const bands = (): Promise<number[]> => page.evaluate((edges) => window.harness.bands('fan', edges, 12), BAND_EDGES);
    /** Band levels once the change has had time to arrive (jitter buffer, smoothing): the second of two reads. */
    async function settledBands(): Promise<number[]> {
      await new Promise((r) => setTimeout(r, 700));
      return bands();
    }

    let full: number[];

    it('a fan joins over the room’s signaling and hears the mix: packets and audio energy arrive', async () => {
      // The room starts paused; a remixer presses play.
      remixer!.doc.transact(() => (remixer!.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
      const joinMs = await page.evaluate((a) => window.harness.join(a, 'fan', true), adapter);
      const first = await until('the mix to arrive', 15_000, async () => {
        const s = await stats();
        return s.packetsReceived > 25 && s.totalAudioEnergy > 0 ? s : null;
      });
      await new Promise((r) => setTimeout(r, 1500));
      const later = await stats();
      expect(later.packetsReceived).to.be.greaterThan(first.packetsReceived);
      expect(later.totalAudioEnergy).to.be.greaterThan(first.totalAudioEnergy);
      full = await bands();
      // Music, not silence: every band carries something.
      for (const level of full) expect(level).to.be.greaterThan(-90);
      report('joined', { joinMs, packetsReceived: later.packetsReceived, packetsLost: later.packetsLost, codecChannels: later.codecChannels, bandsDb: full });
    });

    it('another member mutes the drums: the hats leave the top of the spectrum; unmuting brings them back', async () => {
      remixer!.doc.transact(() => stemMap(remixer!.doc, 'drums').set('mute', true));
      const muted = await until('the drums to go', 10_000, async () => {
        const b = await settledBands();
        return b[AIR]! < full[AIR]! - 10 ? b : null;
      });
      remixer!.doc.transact(() => stemMap(remixer!.doc, 'drums').set('mute', false));
      const back = await until('the drums to come back', 10_000, async () => {
        const b = await settledBands();
        return b[AIR]! > muted[AIR]! + 8 ? b : null;
      });
      report('drums muted', { airDropDb: full[AIR]! - muted[AIR]!, bandsDb: muted, backDb: back });
    });

    it('another member solos the bass: only the bottom of the spectrum stays', async () => {
      remixer!.doc.transact(() => stemMap(remixer!.doc, 'bass').set('solo', true));
      const solo = await until('only the bass', 10_000, async () => {
        const b = await settledBands();
        return b[PRESENCE]! < full[PRESENCE]! - 10 && b[AIR]! < full[AIR]! - 20 ? b : null;
      });
      // The bass is still there: the low band stays within reach of the full mix.
      expect(solo[LOW]!).to.be.greaterThan(full[LOW]! - 12);
      remixer!.doc.transact(() => stemMap(remixer!.doc, 'bass').set('solo', false));
      report('bass solo', { presenceDropDb: full[PRESENCE]! - solo[PRESENCE]!, airDropDb: full[AIR]! - solo[AIR]!, lowDropDb: full[LOW]! - solo[LOW]!, bandsDb: solo });
    });
  });
}

// The contract every SFU adapter keeps, checked in real Chromium: a member
// hears its own room's mix in stereo, hears it change when the source changes,
// cannot reach another room's stream, is cleaned up when it never finishes
// joining or vanishes, and a burst of joins does not stop the sound of those
// already listening. Run it against each adapter (sfu.test.ts).
import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { LiveOutput, type LiveOutputStats } from '../../media/live/live-output.ts';
import type { TestSignal } from '../../media/live/pcm-source.ts';
import { SignalError, type MemberLeftReason, type MixProducer, type Sfu, type SfuKind, type SfuRoom } from '../../media/sfu/sfu.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { requireSfuAdapter } from '../support/sfu-adapters.ts';
import { serveListenerPage, type ServedPage } from '../support/listener-page.ts';
import type { ChannelAnalysis, ReceivedStats } from './page/listener-page.ts';

export interface SfuUnderTest {
  kind: SfuKind;
  /** A fresh SFU whose half-open transports time out after `connectTimeoutMs`. */
  create(options: { connectTimeoutMs: number }): Promise<Sfu>;
  /** A well-formed client message that needs a transport id (to try someone else's). */
  messageForTransport(transportId: string): unknown;
  /** Extra statistics of the SFU's own threads or processes, for the report. */
  loadReport?(sfu: Sfu): Promise<Record<string, unknown>>;
}

const TONE_A: TestSignal = { kind: 'tone', leftHz: 440, rightHz: 660, amplitude: 0.3 };
const TONE_B: TestSignal = { kind: 'tone', leftHz: 880, rightHz: 1320, amplitude: 0.3 };
const TONE_OTHER_ROOM: TestSignal = { kind: 'tone', leftHz: 1000, rightHz: 1500, amplitude: 0.3 };
const CONNECT_TIMEOUT_MS = 2500;
const BURST_JOINS = 12;
// A bin of the page's 8192-point FFT at 48 kHz is 5.9 Hz wide.
const FREQUENCY_TOLERANCE_HZ = 12;

/** Prints a measured figure under the running test (numbers are reported, not asserted). */
export function report(label: string, figures: Record<string, unknown>): void {
  console.log(`        ↳ ${label}: ${JSON.stringify(figures, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`);
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/**
 * Mean jitter-buffer delay between two stats snapshots (ms): what the buffer
 * held, and what it aimed for (NetEq's target; the buffer accelerates down to
 * it after the start-up fill).
 */
function jitterBufferMsBetween(a: ReceivedStats, b: ReceivedStats): { held: number; target: number } {
  const emitted = b.jitterBufferEmittedCount - a.jitterBufferEmittedCount;
  if (emitted <= 0) return { held: 0, target: 0 };
  return {
    held: ((b.jitterBufferDelay - a.jitterBufferDelay) / emitted) * 1000,
    target: ((b.jitterBufferTargetDelay - a.jitterBufferTargetDelay) / emitted) * 1000,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function sfuContract(under: SfuUnderTest): void {
  describe(`SFU contract: ${under.kind}`, function () {
    this.timeout(90_000);

    let browser: LaunchedBrowser | null = null;
    let served: ServedPage | null = null;
    let pageUrl = '';
    let sfu: Sfu | null = null;
    const rooms = new Map<string, SfuRoom>();
    const producers: MixProducer[] = [];
    const outputs = new Map<string, LiveOutput>();
    /** label → the room and member id it signals as. */
    const members = new Map<string, { room: SfuRoom; memberId: string }>();
    const pages: Page[] = [];

    before(async function () {
      await requireSfuAdapter(under.kind, this);
      requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
      served = await serveListenerPage();
      pageUrl = served.url;
      browser = await launchChromium();
      sfu = await under.create({ connectTimeoutMs: CONNECT_TIMEOUT_MS });
      for (const [roomId, signal] of [
        ['room-a', TONE_A],
        ['room-b', TONE_OTHER_ROOM],
      ] as const) {
        const room = await sfu.createRoom(roomId);
        rooms.set(roomId, room);
        const producer = await room.produceMix();
        producers.push(producer);
        outputs.set(roomId, await LiveOutput.create({ source: { kind: 'test', signal }, sink: producer.rtpSink, ssrc: producer.ssrc, payloadType: producer.payloadType }));
      }
    });

    after(async () => {
      // Everything started above, even if a test or the before hook failed.
      for (const page of pages) await page.close().catch(() => undefined);
      await browser?.close();
      for (const output of outputs.values()) await output.close();
      for (const producer of producers) producer.close();
      for (const room of rooms.values()) room.close();
      await sfu?.close();
      await served?.close();
      rooms.clear();
      outputs.clear();
      members.clear();
    });

    function room(id: string): SfuRoom {
      const r = rooms.get(id);
      if (!r) throw new Error(`no room ${id}`);
      return r;
    }

    async function openPage(): Promise<Page> {
      const page = await browser!.context.newPage();
      pages.push(page);
      await page.exposeFunction('sfuSignal', async (label: string, message: unknown) => {
        const member = members.get(label);
        if (!member) throw new Error(`unknown label ${label}`);
        return member.room.signal(member.memberId, message);
      });
      await page.goto(pageUrl);
      await page.waitForFunction(() => typeof window.harness === 'object');
      return page;
    }

    async function join(page: Page, roomId: string, label: string, analyse = true): Promise<number> {
      members.set(label, { room: room(roomId), memberId: label });
      return page.evaluate(([adapter, l, a]) => window.harness.join(adapter, l, a), [under.kind, label, analyse] as const);
    }

    const stats = (page: Page, label: string): Promise<ReceivedStats> => page.evaluate((l) => window.harness.stats(l), label);
    const analyse = (page: Page, label: string): Promise<ChannelAnalysis[]> => page.evaluate((l) => window.harness.analyse(l), label);

    function expectTone(channels: ChannelAnalysis[], signal: TestSignal): void {
      if (signal.kind !== 'tone') throw new Error('not a tone');
      expect(channels).to.have.length(2);
      expect(channels[0]!.peakHz, 'left channel frequency').to.be.closeTo(signal.leftHz, FREQUENCY_TOLERANCE_HZ);
      expect(channels[1]!.peakHz, 'right channel frequency').to.be.closeTo(signal.rightHz, FREQUENCY_TOLERANCE_HZ);
    }

    async function waitForTone(page: Page, label: string, signal: TestSignal): Promise<ChannelAnalysis[]> {
      if (signal.kind !== 'tone') throw new Error('not a tone');
      return waitFor(`${label} to hear ${signal.leftHz}/${signal.rightHz} Hz`, 10_000, async () => {
        const channels = await analyse(page, label);
        const ok =
          Math.abs(channels[0]!.peakHz - signal.leftHz) <= FREQUENCY_TOLERANCE_HZ && Math.abs(channels[1]!.peakHz - signal.rightHz) <= FREQUENCY_TOLERANCE_HZ;
        return ok ? channels : null;
      });
    }

    let mainPage: Page;

    it('a member receives its room’s mix: packets and audio energy arrive, decoded as two channels', async () => {
      mainPage = await openPage();
      const joinMs = await join(mainPage, 'room-a', 'a1');
      const first = await waitFor('packets at a1', 10_000, async () => {
        const s = await stats(mainPage, 'a1');
        return s.packetsReceived > 25 && s.totalAudioEnergy > 0 ? s : null;
      });
      await sleep(2000);
      const later = await stats(mainPage, 'a1');
      expect(later.packetsReceived).to.be.greaterThan(first.packetsReceived);
      expect(later.totalAudioEnergy).to.be.greaterThan(first.totalAudioEnergy);
      if (later.codecChannels !== null) expect(later.codecChannels).to.equal(2);
      // The decisive check: the two decoded channels carry different tones.
      const channels = await waitForTone(mainPage, 'a1', TONE_A);
      expectTone(channels, TONE_A);
      report('received', {
        joinMs,
        packetsReceived: later.packetsReceived,
        packetsLost: later.packetsLost,
        totalAudioEnergy: later.totalAudioEnergy,
        jitterMs: later.jitterMs,
        jitterBufferMsSinceJoin: later.jitterBufferMs,
        jitterBufferMsLast2s: jitterBufferMsBetween(first, later),
        codecChannels: later.codecChannels,
        codecFmtp: later.codecFmtp,
        leftHz: channels[0]!.peakHz,
        rightHz: channels[1]!.peakHz,
      });
    });

    it('switching the source changes what the member hears (tone A → tone B → silence)', async () => {
      const output = outputs.get('room-a')!;
      output.control({ type: 'set-signal', signal: TONE_B });
      const b = await waitForTone(mainPage, 'a1', TONE_B);
      expectTone(b, TONE_B);
      output.control({ type: 'set-signal', signal: { kind: 'silence' } });
      const silent = await waitFor('silence at a1', 10_000, async () => {
        const channels = await analyse(mainPage, 'a1');
        return channels.every((c) => c.rms < 0.001) ? channels : null;
      });
      const before = await stats(mainPage, 'a1');
      await sleep(600);
      const after = await stats(mainPage, 'a1');
      // Silence is still sent (packets keep coming), it just carries no energy.
      expect(after.packetsReceived).to.be.greaterThan(before.packetsReceived);
      expect(after.totalAudioEnergy - before.totalAudioEnergy).to.be.lessThan(1e-4);
      report('switched', { toneB: b.map((c) => c.peakHz), silenceRms: silent.map((c) => c.rms), toneBRms: b.map((c) => c.rms) });
      output.control({ type: 'set-signal', signal: TONE_A });
      await waitForTone(mainPage, 'a1', TONE_A);
    });

    it('a member can only consume its own room’s stream', async () => {
      // Room B's member hears room B's tone, not room A's.
      const b1Ms = await join(mainPage, 'room-b', 'b1');
      const heard = await waitForTone(mainPage, 'b1', TONE_OTHER_ROOM);
      expectTone(heard, TONE_OTHER_ROOM);
      // And a1 still hears A.
      expectTone(await waitForTone(mainPage, 'a1', TONE_A), TONE_A);

      const roomA = room('room-a');
      const roomB = room('room-b');
      const intruder = (await roomA.signal('intruder', { type: 'join' })) as { transportId: string };
      const victim = (await roomB.signal('victim', { type: 'join' })) as { transportId: string };
      try {
        // A member of room A cannot drive a transport of room B, in either room.
        await expectSignalError(roomB.signal('intruder', under.messageForTransport(victim.transportId)), 'unknown-member');
        await expectSignalError(roomA.signal('intruder', under.messageForTransport(victim.transportId)), 'wrong-transport');
        // Nor another member's transport in its own room.
        const other = (await roomA.signal('other', { type: 'join' })) as { transportId: string };
        await expectSignalError(roomA.signal('intruder', under.messageForTransport(other.transportId)), 'wrong-transport');
        // Malformed messages are refused before anything is done with them.
        await expectSignalError(roomA.signal('intruder', { type: 'consume', producerId: 'x' }), 'malformed');
        await expectSignalError(roomA.signal('intruder', { type: 'join', roomId: 'room-b' }), 'malformed');
        await expectSignalError(roomA.signal('intruder', 'join'), 'malformed');
      } finally {
        roomA.leave('intruder');
        roomA.leave('other');
        roomB.leave('victim');
      }
      report('rooms', { b1JoinMs: b1Ms, b1Hz: heard.map((c) => c.peakHz) });
    });

    it('a transport that never finishes joining is closed after the connect timeout', async () => {
      const roomA = room('room-a');
      const before = roomA.memberCount;
      const left = onceMemberLeft(roomA, 'half-open');
      const started = Date.now();
      const { transportId } = (await roomA.signal('half-open', { type: 'join' })) as { transportId: string };
      expect(roomA.memberCount).to.equal(before + 1);
      const reason = await withTimeout(left, CONNECT_TIMEOUT_MS + 5000, 'the half-open transport to be closed');
      expect(reason).to.equal('connect-timeout');
      expect(roomA.memberCount).to.equal(before);
      // Its late answer is refused, not applied to a dead transport.
      await expectSignalError(roomA.signal('half-open', under.messageForTransport(transportId)), 'unknown-member');
      report('half-open', { closedAfterMs: Date.now() - started, connectTimeoutMs: CONNECT_TIMEOUT_MS });
    });

    it('a member whose page vanishes is removed; one that leaves is removed at once', async () => {
      const roomA = room('room-a');
      const page = await openPage();
      await join(page, 'room-a', 'vanishing', false);
      await join(page, 'room-a', 'leaving', false);
      await waitFor('both to receive', 10_000, async () => (await stats(page, 'vanishing')).packetsReceived > 10 && (await stats(page, 'leaving')).packetsReceived > 10);
      const leaving = onceMemberLeft(roomA, 'leaving');
      await page.evaluate(() => window.harness.leave('leaving'));
      expect(await withTimeout(leaving, 2000, 'leave')).to.equal('left');
      const vanished = onceMemberLeft(roomA, 'vanishing');
      const started = Date.now();
      await page.close();
      const reason = await withTimeout(vanished, 45_000, 'the vanished member to be removed');
      expect(reason).to.equal('disconnected');
      report('vanished', { removedAfterMs: Date.now() - started });
    });

    it('a burst of joins does not stop the sound of members already listening', async function () {
      this.timeout(120_000);
      const output = outputs.get('room-a')!;
      const burstPage = await openPage();
      const before = await stats(mainPage, 'a1');
      const loopBefore: LiveOutputStats = await output.stats();
      const samples: number[] = [];
      let sampling = true;
      // a1's packet count, every 250 ms through the burst.
      const sampler = (async () => {
        while (sampling) {
          samples.push((await stats(mainPage, 'a1')).packetsReceived);
          await sleep(250);
        }
      })();
      const started = Date.now();
      const joinMs = await Promise.all(Array.from({ length: BURST_JOINS }, (_, i) => join(burstPage, 'room-a', `burst-${i}`, false)));
      await waitFor('every burst member to receive', 20_000, async () => {
        const all = await Promise.all(Array.from({ length: BURST_JOINS }, (_, i) => stats(burstPage, `burst-${i}`)));
        return all.every((s) => s.packetsReceived > 5);
      });
      const burstMs = Date.now() - started;
      await sleep(1000);
      sampling = false;
      await sampler;
      const after = await stats(mainPage, 'a1');
      const loopAfter = await output.stats();
      const roomStats = await room('room-a').stats();
      const steps = samples.slice(1).map((n, i) => n - samples[i]!);
      expect(after.packetsReceived).to.be.greaterThan(before.packetsReceived);
      expect(steps.reduce((a, b) => a + b, 0)).to.be.greaterThan(0);
      report('burst', {
        joins: BURST_JOINS,
        burstMs,
        joinMsMax: Math.max(...joinMs),
        joinMsMedian: [...joinMs].sort((a, b) => a - b)[Math.floor(joinMs.length / 2)],
        a1PacketsDuringBurst: after.packetsReceived - before.packetsReceived,
        a1ExpectedAt50pps: ((Date.now() - started) / 20) | 0,
        a1SmallestStepPer250ms: Math.min(...steps),
        a1PacketsLost: after.packetsLost - before.packetsLost,
        a1JitterMs: after.jitterMs,
        a1JitterBufferMsThroughBurst: jitterBufferMsBetween(before, after),
        sendLoopLatenessMs: loopAfter.latenessMs,
        sendLoopFramesSkippedInBurst: loopAfter.framesSkipped - loopBefore.framesSkipped,
        sfuForwardDelayMs: roomStats.forwardDelayMs,
        sfuPacketsDroppedLate: roomStats.packetsDroppedLate,
        ...(under.loadReport && sfu ? await under.loadReport(sfu) : {}),
      });
      await burstPage.close();
    });
  });
}

async function expectSignalError(promise: Promise<unknown>, code: SignalError['code']): Promise<void> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(SignalError);
    expect((err as SignalError).code).to.equal(code);
    return;
  }
  expect.fail(`expected a SignalError (${code})`);
}

function onceMemberLeft(room: SfuRoom, memberId: string): Promise<MemberLeftReason> {
  return new Promise((resolve) => {
    const listener = (id: string, reason: MemberLeftReason) => {
      if (id !== memberId) return;
      room.off('memberleft', listener);
      resolve(reason);
    };
    room.on('memberleft', listener);
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    }),
  ]);
}

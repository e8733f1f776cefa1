// The mixer as the live loop's PCM source: it follows the room's checked state
// from control messages, plays where the room's transport says, and refuses
// what is not a state message.
import { expect } from 'chai';
import { MixerPcmSource, RESYNC_MS, type MixerSourceInit } from '../../media/live/mixer-source.ts';
import { neutralMaster, neutralStrip, type RoomState } from '../../shared/room-doc.ts';

const SR = 48_000;
const FRAME = 960;

/** Two stems of one second each: a 200 Hz sine (left+right) and a 3 kHz sine. */
function stems(): MixerSourceInit['stems'] {
  const make = (hz: number) => {
    const pcm = new Float32Array(new SharedArrayBuffer(SR * 2 * 4 * 4));
    for (let i = 0; i < pcm.length / 2; i++) pcm[2 * i] = pcm[2 * i + 1] = 0.2 * Math.sin((2 * Math.PI * hz * i) / SR);
    return pcm;
  };
  return [
    { id: 'low', pcm: make(200) },
    { id: 'high', pcm: make(3000) },
  ];
}

function roomState(playing: boolean, anchorMs: number, overrides: { mute?: string[] } = {}): Pick<RoomState, 'mix' | 'arrangement'> {
  const strips: RoomState['mix']['stems'] = {};
  for (const id of ['low', 'high']) strips[id] = { ...neutralStrip(), mute: overrides.mute?.includes(id) ?? false };
  return {
    mix: { stems: strips, master: neutralMaster() },
    arrangement: { excerptId: 'all', loopStartSec: null, loopEndSec: null, transport: { playing, positionSec: 0, anchorMs } },
  };
}

const release: MixerSourceInit['release'] = { bpm: 120, excerpts: [{ id: 'all', title: 'All', startSec: 0, endSec: 4 }] };

function rms(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v * v;
  return Math.sqrt(s / x.length);
}

describe('mixer source (the live loop’s PCM from the room state)', () => {
  it('is silent while the room is paused and plays once a state says playing', () => {
    let now = 1_000_000;
    const source = new MixerPcmSource({ sampleRate: SR, stems: stems(), release, room: roomState(false, now) }, () => now);
    const out = new Float32Array(FRAME * 2);
    source.render(out, FRAME);
    expect(rms(out)).to.equal(0);
    source.control({ type: 'room-state', room: roomState(true, now) });
    for (let i = 0; i < 5; i++) {
      now += 20;
      source.render(out, FRAME);
    }
    expect(rms(out)).to.be.greaterThan(0.05);
  });

  it('follows a mute in the next frame it renders', () => {
    let now = 2_000_000;
    const source = new MixerPcmSource({ sampleRate: SR, stems: stems(), release, room: roomState(true, now) }, () => now);
    const out = new Float32Array(FRAME * 2);
    for (let i = 0; i < 5; i++) source.render(out, FRAME), (now += 20);
    const both = rms(out);
    source.control({ type: 'room-state', room: roomState(true, now - 100, { mute: ['low', 'high'] }) });
    for (let i = 0; i < 5; i++) source.render(out, FRAME), (now += 20);
    expect(rms(out)).to.be.lessThan(both / 100);
  });

  it('jumps to where the room’s transport is after skipped frames', () => {
    let now = 3_000_000;
    const source = new MixerPcmSource({ sampleRate: SR, stems: stems(), release, room: roomState(true, now) }, () => now);
    const out = new Float32Array(FRAME * 2);
    for (let i = 0; i < 10; i++) source.render(out, FRAME), (now += 20);
    expect(source.mixer.sourceSec).to.be.closeTo(0.2, 0.03);
    // The loop fell 1.5 s behind and skipped: the next frame plays where the transport is.
    now += 1500;
    source.skip(75 * FRAME);
    source.render(out, FRAME);
    source.render(out, FRAME);
    expect(source.mixer.sourceSec).to.be.closeTo((now - 3_000_000) / 1000, 0.08);
  });

  it('re-anchors on the room’s transport every RESYNC_MS even without messages or skips', () => {
    let now = 4_000_000;
    const source = new MixerPcmSource({ sampleRate: SR, stems: stems(), release, room: roomState(true, now) }, () => now);
    const out = new Float32Array(FRAME * 2);
    for (let i = 0; i < 10; i++) source.render(out, FRAME), (now += 20);
    // The clock moved on further than the frames rendered (a stalled thread): within RESYNC_MS nothing is re-read…
    now += RESYNC_MS / 4;
    source.render(out, FRAME);
    expect(source.mixer.sourceSec).to.be.closeTo(0.22, 0.03);
    // …after it, the mixer follows the transport again.
    now += RESYNC_MS;
    source.render(out, FRAME);
    source.render(out, FRAME);
    expect(source.mixer.sourceSec).to.be.closeTo((now - 4_000_000) / 1000, 0.08);
  });

  it('refuses a control message that is not a room state, and bad init', () => {
    const source = new MixerPcmSource({ sampleRate: SR, stems: stems(), release, room: roomState(true, 0) });
    expect(() => source.control({ type: 'set-signal' })).to.throw(TypeError);
    expect(() => source.control(null)).to.throw(TypeError);
    expect(() => source.control({ type: 'room-state' })).to.throw(TypeError);
    expect(() => new MixerPcmSource({ sampleRate: SR, stems: [], release, room: roomState(true, 0) })).to.throw(RangeError);
    expect(() => new MixerPcmSource({ sampleRate: SR, stems: stems(), release: { bpm: 120, excerpts: [] }, room: roomState(true, 0) })).to.throw(RangeError);
  });
});

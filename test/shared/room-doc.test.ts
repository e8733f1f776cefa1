import { expect } from 'chai';
import * as Y from 'yjs';
import { ROOM_DOC_VERSION, effectiveRange, normalizeRoomDoc, readRoomState } from '../../shared/room-doc.ts';
import { MASTER_CONTROLS } from '../../shared/controls.ts';
import { playRegion, transportPosition } from '../../shared/transport.ts';
import { testRoomRelease } from '../support/room-release.ts';

describe('room document layout', () => {
  const release = testRoomRelease({ masterRanges: { tempo: { min: 0.9, max: 1.1 } } });

  it('builds a fresh document with every control at its neutral value', () => {
    const doc = new Y.Doc();
    expect(normalizeRoomDoc(doc, release, 5)).to.equal(true);
    const s = readRoomState(doc);
    expect(s.meta).to.deep.equal({ releaseId: 'fixture', createdAtMs: 5, schemaVersion: ROOM_DOC_VERSION });
    expect(Object.keys(s.mix.stems)).to.deep.equal(['drums', 'bass', 'lead']);
    expect(s.mix.stems['drums']).to.include({ gainDb: 0, mute: false, solo: false, pan: 0, lowpassHz: 20000, highpassHz: 20 });
    expect(s.mix.master.tempo).to.equal(1);
    expect(s.arrangement).to.deep.include({ excerptId: 'intro', loopStartSec: null, loopEndSec: null });
    expect(s.arrangement.transport).to.deep.equal({ playing: false, positionSec: 0, anchorMs: 5 });
    expect(s.rules.editableStems).to.deep.equal(['drums', 'bass', 'lead']);
    expect(normalizeRoomDoc(doc, release, 6), 'a second pass changes nothing').to.equal(false);
  });

  it('loads a document written by an older version: fills what is missing, keeps what is there', () => {
    // What a first version might have stored: a version 0, only four controls per stem, no transport.
    const old = new Y.Doc();
    old.getMap('meta').set('schemaVersion', 0);
    const stems = new Y.Map<unknown>();
    old.getMap('mix').set('stems', stems);
    const drums = new Y.Map<unknown>();
    stems.set('drums', drums);
    drums.set('gainDb', -7);
    drums.set('mute', true);
    old.getMap('arrangement').set('excerptId', 'drop');
    const bytes = Y.encodeStateAsUpdate(old);

    const doc = new Y.Doc();
    Y.applyUpdate(doc, bytes);
    normalizeRoomDoc(doc, release, 9);
    const s = readRoomState(doc);
    expect(s.meta.schemaVersion).to.equal(ROOM_DOC_VERSION);
    expect(s.mix.stems['drums']).to.include({ gainDb: -7, mute: true, solo: false, eqLowDb: 0 });
    expect(s.mix.stems['lead']!.gainDb).to.equal(0);
    expect(s.arrangement.excerptId).to.equal('drop');
    expect(s.arrangement.transport.playing).to.equal(false);
  });

  it('clamps stored values into the current rules and replaces an excerpt the release no longer has', () => {
    const doc = new Y.Doc();
    normalizeRoomDoc(doc, release, 1);
    (doc.getMap('mix').get('master') as Y.Map<unknown>).set('tempo', 1.25);
    doc.getMap('arrangement').set('excerptId', 'gone');
    normalizeRoomDoc(doc, release, 2);
    expect(readRoomState(doc).mix.master.tempo).to.equal(1.1);
    expect(readRoomState(doc).arrangement.excerptId).to.equal('intro');
  });

  it('narrows a control by the release and the room, never past the control itself', () => {
    expect(effectiveRange(MASTER_CONTROLS.tempo, { min: 0.9, max: 1.1 }, { min: 0.95, max: 1.3 })).to.deep.equal({ min: 0.95, max: 1.1, neutral: 1 });
    expect(effectiveRange(MASTER_CONTROLS.tempo)).to.deep.equal({ min: 0.75, max: 1.25, neutral: 1 });
  });
});

describe('transport', () => {
  const release = testRoomRelease();
  const state = (over: { playing?: boolean; positionSec?: number; anchorMs?: number; tempo?: number; loop?: [number, number] | null; excerptId?: string }) => ({
    arrangement: {
      excerptId: over.excerptId ?? 'drop',
      loopStartSec: over.loop?.[0] ?? null,
      loopEndSec: over.loop?.[1] ?? null,
      transport: { playing: over.playing ?? true, positionSec: over.positionSec ?? 0, anchorMs: over.anchorMs ?? 1000 },
    },
    mix: { stems: {}, master: { tempo: over.tempo ?? 1 } as never },
  });

  it('stands still while paused and advances at the master tempo while playing', () => {
    expect(transportPosition(state({ playing: false, positionSec: 3 }), release, 99_000)).to.equal(3);
    expect(transportPosition(state({ positionSec: 3 }), release, 3000)).to.equal(5);
    expect(transportPosition(state({ positionSec: 3, tempo: 1.25 }), release, 3000)).to.equal(5.5);
  });

  it('loops the excerpt, or the loop region inside it', () => {
    // The drop runs 30..70 s of the piece: 40 s long.
    expect(transportPosition(state({ positionSec: 39 }), release, 3000)).to.be.closeTo(1, 1e-9);
    expect(playRegion(state({ loop: [40, 44] }), release)).to.deep.equal({ startSec: 40, endSec: 44 });
    expect(transportPosition(state({ positionSec: 10, loop: [40, 44] }), release, 4000)).to.be.closeTo(13, 1e-9);
    expect(playRegion(state({ loop: [10, 20] }), release), 'a loop outside the excerpt is ignored').to.deep.equal({ startSec: 30, endSec: 70 });
  });
});

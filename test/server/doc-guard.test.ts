import { expect } from 'chai';
import * as Y from 'yjs';
import { ROOT_MAPS, normalizeRoomDoc, readRules, type WriteContext } from '../../shared/room-doc.ts';
import type { Role } from '../../shared/roles.ts';
import * as encoding from 'lib0/encoding';
import { DocGuard, trimDecodedContent } from '../../server/rooms/doc-guard.ts';
import { testRoomRelease } from '../support/room-release.ts';

describe('DocGuard: every member update is checked before it counts', () => {
  const release = testRoomRelease({ editableStems: ['drums', 'bass'], masterRanges: { tempo: { min: 0.9, max: 1.1 } } });
  let server: Y.Doc;
  let guard: DocGuard;
  let client: Y.Doc;

  beforeEach(() => {
    server = new Y.Doc();
    server.transact(() => normalizeRoomDoc(server, release, 1000), 'server');
    guard = new DocGuard(server);
    client = new Y.Doc();
    Y.applyUpdate(client, Y.encodeStateAsUpdate(server));
  });
  afterEach(() => {
    guard.destroy();
  });

  const ctx = (role: Role, userId = 'u1'): WriteContext => ({ role, userId, release, rules: readRules(server.getMap('rules'), release) });

  /** Makes an edit on the client, runs it through the guard as the server would, and returns the verdict. */
  function edit(role: Role, change: (doc: Y.Doc) => void, userId = 'u1') {
    const before = Y.encodeStateVector(client);
    change(client);
    const update = Y.encodeStateAsUpdate(client, before);
    const verdict = guard.check(update, ctx(role, userId));
    const origin = { from: 'client' };
    guard.markGuarded(origin);
    if (verdict.ok) Y.applyUpdate(server, update, origin);
    else if (verdict.neutralized) {
      Y.applyUpdate(server, verdict.neutralized, origin);
      Y.applyUpdate(client, verdict.neutralized);
    }
    expect(guard.inStep(), 'the shadow stays equal to the real document').to.equal(true);
    return verdict;
  }

  const json = (doc: Y.Doc) => JSON.stringify(Object.fromEntries(ROOT_MAPS.map((n) => [n, doc.getMap(n).toJSON()])));
  const stem = (doc: Y.Doc, id: string) => (doc.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>>).get(id)!;
  const master = (doc: Y.Doc) => doc.getMap('mix').get('master') as Y.Map<unknown>;

  it("accepts a remixer's fader move within range", () => {
    const v = edit('remixer', (d) => stem(d, 'drums').set('gainDb', -6));
    expect(v.ok).to.equal(true);
    expect(stem(server, 'drums').get('gainDb')).to.equal(-6);
  });

  it("refuses a listener's fader move, brings the client back, and changes nothing on the server", () => {
    const v = edit('listener', (d) => stem(d, 'drums').set('gainDb', -20));
    expect(v).to.deep.include({ ok: false });
    expect((v as { refusal: { code: string } }).refusal.code).to.equal('read_only');
    expect(stem(server, 'drums').get('gainDb')).to.equal(0);
    expect(stem(client, 'drums').get('gainDb')).to.equal(0);
  });

  it('keeps a refused client usable: its next allowed edit applies with no missing history', () => {
    edit('remixer', (d) => master(d).set('tempo', 2));
    const v = edit('remixer', (d) => master(d).set('tempo', 1.05));
    expect(v.ok).to.equal(true);
    expect(master(server).get('tempo')).to.equal(1.05);
    expect(server.store.pendingStructs).to.equal(null);
  });

  const refusals: [string, Role, (d: Y.Doc) => void, string][] = [
    ['a value above the release range', 'remixer', (d) => master(d).set('tempo', 1.2), 'out_of_range'],
    ['NaN', 'remixer', (d) => stem(d, 'bass').set('pan', Number.NaN), 'invalid_value'],
    ['infinity', 'remixer', (d) => stem(d, 'bass').set('gainDb', Number.POSITIVE_INFINITY), 'invalid_value'],
    ['a string for a number', 'remixer', (d) => stem(d, 'bass').set('gainDb', '-3'), 'invalid_value'],
    ['a locked stem', 'remixer', (d) => stem(d, 'lead').set('mute', true), 'stem_locked'],
    ['an unknown control', 'remixer', (d) => stem(d, 'bass').set('warp', 1), 'unknown_field'],
    ['the visual state', 'host', (d) => d.getMap('visual').set('prompt', 'hacked'), 'server_managed'],
    ['the meta map', 'host', (d) => d.getMap('meta').set('releaseId', 'other'), 'server_managed'],
    ['a rule, by a remixer', 'remixer', (d) => d.getMap('rules').set('chatEnabled', false), 'host_only'],
    ['a rule that widens the release', 'host', (d) => d.getMap('rules').set('editableStems', ['drums', 'bass', 'lead']), 'rules_widen'],
    ['a transport anchor', 'remixer', (d) => (d.getMap('arrangement').get('transport') as Y.Map<unknown>).set('anchorMs', 5), 'server_managed'],
    ['an excerpt that does not exist', 'remixer', (d) => d.getMap('arrangement').set('excerptId', 'nope'), 'invalid_value'],
  ];
  for (const [what, role, change, code] of refusals) {
    it(`refuses ${what} with "${code}" and restores the true value`, () => {
      const truth = json(server);
      const v = edit(role, change);
      expect(v.ok).to.equal(false);
      expect((v as { refusal: { code: string } }).refusal.code).to.equal(code);
      expect(json(server)).to.equal(truth);
      expect(json(client)).to.equal(truth);
    });
  }

  it('refuses replacing a stem strip with a new map and restores its values', () => {
    edit('remixer', (d) => stem(d, 'drums').set('gainDb', -4));
    const v = edit('remixer', (d) => (d.getMap('mix').get('stems') as Y.Map<unknown>).set('drums', new Y.Map()));
    expect((v as { refusal: { code: string } }).refusal.code).to.equal('server_managed');
    expect(stem(server, 'drums').get('gainDb')).to.equal(-4);
    expect(stem(client, 'drums').get('gainDb')).to.equal(-4);
  });

  it('refuses deleting a control and puts it back', () => {
    const v = edit('host', (d) => stem(d, 'drums').delete('pan'));
    expect(v.ok).to.equal(false);
    expect(stem(client, 'drums').get('pan')).to.equal(0);
    expect(stem(server, 'drums').has('pan')).to.equal(true);
  });

  it('refuses content in a top-level type the room does not have, and clears it', () => {
    const v = edit('host', (d) => d.getArray('evil').push(['x', 'y']));
    expect((v as { refusal: { code: string } }).refusal.code).to.equal('unknown_field');
    expect(client.getArray('evil').length).to.equal(0);
    expect(server.getArray('evil').length).to.equal(0);
  });

  it('lets the host narrow a range', () => {
    const v = edit('host', (d) => d.getMap('rules').set('masterRanges', { tempo: { min: 0.95, max: 1.0 } }));
    expect(v.ok).to.equal(true);
  });

  it('refuses an update that builds on history the server lacks', () => {
    const other = new Y.Doc();
    Y.applyUpdate(other, Y.encodeStateAsUpdate(client));
    other.getMap('mix').set('x', 1);
    const sv = Y.encodeStateVector(other);
    master(other).set('tempo', 1.0);
    const v = guard.check(Y.encodeStateAsUpdate(other, sv), ctx('remixer'));
    expect(v).to.deep.equal({ ok: false, refusal: { code: 'missing_history', message: 'the update builds on changes the server does not have; reload the room' }, neutralized: null });
    expect(guard.inStep()).to.equal(true);
  });

  it('refuses bytes that are not an update', () => {
    const v = guard.check(new Uint8Array([200, 1, 2, 3, 4]), ctx('host'));
    expect(v.ok).to.equal(false);
    expect(guard.inStep()).to.equal(true);
  });

  it('resolves a refused edit that lost a race to an allowed one on the allowed value', () => {
    const b = new Y.Doc();
    Y.applyUpdate(b, Y.encodeStateAsUpdate(server));
    const svB = Y.encodeStateVector(b);
    stem(b, 'drums').set('gainDb', -9);
    const updB = Y.encodeStateAsUpdate(b, svB);
    expect(guard.check(updB, ctx('remixer', 'b')).ok).to.equal(true);
    const o = {};
    guard.markGuarded(o);
    Y.applyUpdate(server, updB, o);
    // The listener edits concurrently, not having seen B's edit.
    edit('listener', (d) => stem(d, 'drums').set('gainDb', 3));
    expect(stem(server, 'drums').get('gainDb')).to.equal(-9);
    Y.applyUpdate(client, Y.encodeStateAsUpdate(server));
    expect(stem(client, 'drums').get('gainDb')).to.equal(-9);
  });
  // Found by the room fuzzer (test/server/fuzz.test.ts); each was a way to break the room for everyone.

  for (const key of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    it(`refuses a control named "${key}" (an Object.prototype member) and stays in step`, () => {
      const truth = json(server);
      for (const change of [(d: Y.Doc) => master(d).set(key, 1), (d: Y.Doc) => stem(d, 'drums').set(key, 1)]) {
        const v = edit('remixer', change);
        expect((v as { refusal: { code: string } }).refusal.code).to.equal('unknown_field');
      }
      expect(json(server)).to.equal(truth);
    });
  }

  it('refuses a value of any Yjs kind for every control, with a correction (a BigInt once made the check throw)', () => {
    const odd: unknown[] = [7n, new Uint8Array([1]), undefined, null, { a: 1 }, [1], 'x', Number.NaN];
    for (const value of odd) {
      for (const change of [
        (d: Y.Doc) => d.getMap('arrangement').set('excerptId', value),
        (d: Y.Doc) => d.getMap('arrangement').set('loopStartSec', value),
        (d: Y.Doc) => (d.getMap('arrangement').get('transport') as Y.Map<unknown>).set('positionSec', value),
        (d: Y.Doc) => master(d).set('tempo', value),
        (d: Y.Doc) => stem(d, 'drums').set('mute', value),
        (d: Y.Doc) => d.getMap('rules').set('roles', value),
      ]) {
        const truth = json(server);
        const v = edit('host', change);
        if (value === null && v.ok) continue; // a loop may be cleared
        expect(v.ok, `${String(value)} accepted`).to.equal(false);
        expect((v as { neutralized: unknown }).neutralized, 'the sender is brought back').to.not.equal(null);
        expect(json(server)).to.equal(truth);
      }
    }
  });

  it('refuses an update whose check throws, and keeps the shadow in step with the document', () => {
    const truth = json(server);
    const before = Y.encodeStateVector(client);
    stem(client, 'bass').set('gainDb', -3);
    const broken = { ...ctx('remixer'), rules: { get editableStems(): string[] { throw new Error('a bug in a check') } } } as unknown as WriteContext;
    const v = guard.check(Y.encodeStateAsUpdate(client, before), broken);
    expect(v).to.deep.include({ ok: false, neutralized: null });
    expect((v as { refusal: { code: string } }).refusal.code).to.equal('malformed');
    expect(guard.inStep(), 'the shadow was not left ahead of the document').to.equal(true);
    expect(json(server)).to.equal(truth);
  });

  it("refuses an update written under another member's client id, and lets the owner go on", () => {
    const owner = new Y.Doc();
    owner.clientID = 77;
    Y.applyUpdate(owner, Y.encodeStateAsUpdate(server));
    const apply = (doc: Y.Doc, change: (d: Y.Doc) => void, userId: string) => {
      const sv = Y.encodeStateVector(doc);
      change(doc);
      const update = Y.encodeStateAsUpdate(doc, sv);
      const v = guard.check(update, ctx('remixer', userId));
      const origin = {};
      guard.markGuarded(origin);
      if (v.ok) Y.applyUpdate(server, update, origin);
      return v;
    };
    expect(apply(owner, (d) => stem(d, 'drums').set('gainDb', -1), 'owner').ok).to.equal(true);
    // A forger writes at the owner's next clock; were it taken, the owner's own edit there would be dropped as a duplicate.
    const forger = new Y.Doc();
    Y.applyUpdate(forger, Y.encodeStateAsUpdate(server));
    forger.clientID = 77;
    const v = apply(forger, (d) => stem(d, 'drums').set('gainDb', -2), 'forger');
    expect(v).to.deep.equal({ ok: false, refusal: { code: 'malformed', message: "the update is written under another member's client id" }, neutralized: null });
    expect(apply(owner, (d) => stem(d, 'drums').set('gainDb', -3), 'owner').ok).to.equal(true);
    expect(stem(server, 'drums').get('gainDb')).to.equal(-3);
    expect(guard.inStep()).to.equal(true);
  });

  it('trims decoded content without changing the document (same values, same encoding, still editable)', () => {
    stem(server, 'drums').set('gainDb', -7);
    const loaded = new Y.Doc();
    Y.applyUpdate(loaded, Y.encodeStateAsUpdate(server));
    const encoded = Y.encodeStateAsUpdate(loaded);
    trimDecodedContent(loaded);
    expect(Y.encodeStateAsUpdate(loaded)).to.deep.equal(encoded);
    expect(json(loaded)).to.equal(json(server));
    stem(loaded, 'drums').set('gainDb', -8);
    Y.applyUpdate(server, Y.encodeStateAsUpdate(loaded, Y.encodeStateVector(server)));
    expect(stem(server, 'drums').get('gainDb')).to.equal(-8);
  });

  describe('its shadow copy, made only when needed', () => {
    it('accepts an empty update (a joining client\'s sync step 2) without making a shadow', () => {
      const fresh = new DocGuard(server);
      try {
        expect(fresh.check(Y.encodeStateAsUpdate(new Y.Doc()), ctx('listener'))).to.deep.equal({ ok: true });
        expect(fresh.check(Y.encodeStateAsUpdate(client, Y.encodeStateVector(client)), ctx('remixer'))).to.deep.equal({ ok: true });
        expect(fresh.hasShadow).to.equal(false);
      } finally {
        fresh.destroy();
      }
    });

    it('makes the shadow for the first real update and lets it go after it has been idle', async () => {
      guard.destroy();
      guard = new DocGuard(server, undefined, { shadowIdleMs: 30 });
      expect(guard.hasShadow).to.equal(false);
      expect(edit('remixer', (d) => stem(d, 'drums').set('gainDb', -2)).ok).to.equal(true);
      expect(guard.hasShadow).to.equal(true);
      await new Promise((r) => setTimeout(r, 80));
      expect(guard.hasShadow).to.equal(false);
      expect(stem(server, 'drums').get('gainDb')).to.equal(-2);
    });

    it('still refuses and corrects after the shadow was let go and the document changed meanwhile', async () => {
      guard.destroy();
      guard = new DocGuard(server, undefined, { shadowIdleMs: 20 });
      edit('remixer', (d) => stem(d, 'drums').set('gainDb', -5));
      // A corrected refusal: the shadow wrote under its own client id.
      expect((edit('listener', (d) => stem(d, 'bass').set('gainDb', -20)) as { refusal: { code: string } }).refusal.code).to.equal('read_only');
      await new Promise((r) => setTimeout(r, 60));
      expect(guard.hasShadow).to.equal(false);
      // The server changes the document while there is no shadow; the next shadow must have it.
      server.transact(() => master(server).set('reverbMix', 0.4), 'server');
      Y.applyUpdate(client, Y.encodeStateAsUpdate(server, Y.encodeStateVector(client)));
      const truth = json(server);
      const v = edit('listener', (d) => master(d).set('reverbMix', 0.9));
      expect((v as { refusal: { code: string } }).refusal.code).to.equal('read_only');
      expect(guard.hasShadow).to.equal(true);
      expect(json(server)).to.equal(truth);
      expect(json(client)).to.equal(truth);
      expect(edit('remixer', (d) => master(d).set('reverbMix', 0.2)).ok).to.equal(true);
      expect(master(server).get('reverbMix')).to.equal(0.2);
      expect(server.store.pendingStructs).to.equal(null);
    });

    it('checks an update that only deletes, even with no shadow yet', () => {
      guard.destroy();
      guard = new DocGuard(server);
      const v = edit('host', (d) => stem(d, 'drums').delete('pan'));
      expect(v.ok).to.equal(false);
      expect(stem(server, 'drums').get('pan')).to.equal(0);
      expect(stem(client, 'drums').get('pan')).to.equal(0);
    });

    it('lets go of the shadow and its timer when destroyed', () => {
      edit('remixer', (d) => stem(d, 'drums').set('gainDb', -1));
      expect(guard.hasShadow).to.equal(true);
      guard.destroy();
      expect(guard.hasShadow).to.equal(false);
    });
  });

  it('refuses an empty struct, which would make the document unreadable for every member who joins later', () => {
    const enc = encoding.createEncoder();
    for (const n of [1, 1, 4242, 0, 0, 0, 0]) encoding.writeVarUint(enc, n); // one client, one GC struct at clock 0 of length 0, no deletions
    const v = guard.check(encoding.toUint8Array(enc), ctx('host'));
    expect(v).to.deep.include({ ok: false, neutralized: null });
    const fresh = new Y.Doc();
    Y.applyUpdate(fresh, Y.encodeStateAsUpdate(server));
    expect(json(fresh)).to.equal(json(server));
  });

  it('refuses a struct that collides with another under the same id, which Yjs would re-encode somewhere else', () => {
    // A struct written under the victim's id before the victim's own edit reached the server (as after a restart).
    const victim = new Y.Doc();
    victim.clientID = 900;
    Y.applyUpdate(victim, Y.encodeStateAsUpdate(server));
    const forged = new Y.Doc();
    Y.applyUpdate(forged, Y.encodeStateAsUpdate(server));
    forged.clientID = 900;
    const sv = Y.encodeStateVector(forged);
    master(forged).set('delayBeats', 1);
    Y.applyUpdate(server, Y.encodeStateAsUpdate(forged, sv), 'server');
    const truth = json(server);
    // The victim's own edit at the same clock: three items, of which the server knows the id of the first.
    const before = Y.encodeStateVector(victim);
    victim.getArray('elsewhere').insert(0, [1, 'two', { three: 3 }]);
    const v = guard.check(Y.encodeStateAsUpdate(victim, before), ctx('listener', 'victim'));
    expect(v).to.deep.include({ ok: false, neutralized: null });
    expect(guard.inStep()).to.equal(true);
    expect(json(server)).to.equal(truth);
  });
});

import { expect } from 'chai';
import fs from 'node:fs';
import { releaseManifestJsonSchema } from '../../shared/release-manifest-json-schema.ts';
import { ReleaseManifestSchema, describeManifestIssues } from '../../shared/release-manifest.ts';

const minimal = {
  schemaVersion: 1,
  id: 'night-drive',
  title: 'Night Drive',
  artist: 'The Artist',
  stems: [
    { id: 'drums', title: 'Drums', file: 'stems/drums.wav' },
    { id: 'bass', title: 'Bass', file: 'stems/bass.flac' },
  ],
  excerpts: [{ id: 'hook', title: 'Hook', startSec: 10, endSec: 40 }],
  artwork: [{ id: 'cover', title: 'Cover', file: 'art/cover.png', kind: 'cover', consent: true }],
};

function problems(manifest: unknown): string[] {
  const r = ReleaseManifestSchema.safeParse(manifest);
  return r.success ? [] : describeManifestIssues(r.error, 20);
}

describe('release manifest schema', () => {
  it('accepts a minimal manifest and fills in the artist-rule defaults', () => {
    const m = ReleaseManifestSchema.parse(minimal);
    expect(m.rules.prompts.policy).to.equal('open');
    expect(m.rules.clips.freeSeconds).to.equal(30);
    expect(m.rules.purchase).to.include({ enabled: true, currency: 'USD' });
    expect(m.artwork[0]!.tags).to.deep.equal([]);
  });

  const cases: [string, (m: typeof minimal & Record<string, unknown>) => unknown, RegExp][] = [
    ['a path that climbs out of the folder', (m) => ({ ...m, stems: [{ id: 'd', title: 'D', file: '../d.wav' }] }), /^stems\[0\]\.file: must stay inside/],
    ['an absolute path', (m) => ({ ...m, stems: [{ id: 'd', title: 'D', file: '/etc/d.wav' }] }), /^stems\[0\]\.file: must be a relative path/],
    ['a Windows path', (m) => ({ ...m, stems: [{ id: 'd', title: 'D', file: 'C:\\d.wav' }] }), /^stems\[0\]\.file: must be a relative path/],
    ['an unsupported stem format', (m) => ({ ...m, stems: [{ id: 'd', title: 'D', file: 'd.ogg' }] }), /^stems\[0\]\.file: must end in \.wav, \.flac, \.mp3/],
    ['an unsupported artwork format', (m) => ({ ...m, artwork: [{ ...m.artwork[0], file: 'a.gif' }] }), /^artwork\[0\]\.file: must end in \.png, \.jpg, \.jpeg/],
    ['repeated stem ids', (m) => ({ ...m, stems: [m.stems[0], { ...m.stems[0], file: 'x.wav' }] }), /^stems\[1\]: repeats the stem id "drums"/],
    ['an id with capitals or slashes', (m) => ({ ...m, id: 'Night/Drive' }), /^id: must be 1-63 characters/],
    ['an excerpt shorter than 5 s', (m) => ({ ...m, excerpts: [{ id: 'x', title: 'X', startSec: 3, endSec: 4 }] }), /^excerpts\[0\]: must be at least 5 seconds/],
    ['no stems', (m) => ({ ...m, stems: [] }), /^stems: must list at least one stem/],
    ['an unknown field (a typo)', (m) => ({ ...m, stemz: [] }), /stemz/],
    ['a missing consent flag', (m) => ({ ...m, artwork: [{ id: 'c', title: 'C', file: 'c.png' }] }), /^artwork\[0\]\.consent/],
    ['a tempo range wider than the mixer allows', (m) => ({ ...m, rules: { masterRanges: { tempo: { min: 0.5, max: 1 } } } }), /^rules\.masterRanges\.tempo: must lie within 0\.75\.\.1\.25/],
    ['a range with min above max', (m) => ({ ...m, rules: { stemRanges: { gainDb: { min: 0, max: -10 } } } }), /^rules\.stemRanges\.gainDb: min must not be above max/],
    ['an editable stem that does not exist', (m) => ({ ...m, rules: { editableStems: ['vocals'] } }), /^rules\.editableStems\[0\]: names no stem of this release: "vocals"/],
    ['a free clip over 30 s', (m) => ({ ...m, rules: { clips: { freeSeconds: 45 } } }), /^rules\.clips\.freeSeconds/],
    ['an unknown prompt policy', (m) => ({ ...m, rules: { prompts: { policy: 'maybe' } } }), /^rules\.prompts\.policy/],
    ['a newer schema version', (m) => ({ ...m, schemaVersion: 2 }), /^schemaVersion: must be 1/],
  ];
  for (const [what, edit, message] of cases) {
    it(`refuses ${what}, naming the field`, () => {
      const found = problems(edit(minimal as typeof minimal & Record<string, unknown>));
      expect(found.some((p) => message.test(p)), found.join('\n')).to.equal(true);
    });
  }

  it('is published as a JSON schema that matches the code (npm run schema)', () => {
    const committed = JSON.parse(fs.readFileSync(new URL('../../shared/release-manifest.schema.json', import.meta.url), 'utf8'));
    expect(committed).to.deep.equal(releaseManifestJsonSchema());
    expect(committed.required).to.include.members(['schemaVersion', 'id', 'title', 'artist', 'stems', 'excerpts', 'artwork']);
  });
});

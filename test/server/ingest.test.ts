import { expect } from 'chai';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { readWavFloat32 } from '../../media/audio/wav.ts';
import { IngestError, ingestRelease, type IngestProgress } from '../../server/catalog/ingest.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { commandExists, requireComponent } from '../support/components.ts';
import { listTree, writeFixtureRelease, type FixtureOptions } from '../support/release-fixture.ts';
import { tempDir } from '../support/temp.ts';

describe('release ingest', function () {
  this.timeout(60_000);
  let work: { path: string; remove(): Promise<void> };
  let layout: DataLayout;
  let store: SqliteStore;
  let n = 0;

  beforeEach(async () => {
    work = await tempDir('ingest');
    layout = new DataLayout(path.join(work.path, 'data'));
    await fsp.mkdir(layout.root, { recursive: true });
    store = await SqliteStore.open(layout.database);
  });
  afterEach(async () => {
    await store.close();
    await work.remove();
  });

  async function fixture(opts: FixtureOptions = {}): Promise<string> {
    const folder = path.join(work.path, `release-${++n}`);
    await writeFixtureRelease(folder, opts);
    return folder;
  }

  function ingest(folder: string, extra: { ffmpeg?: string | null; replace?: boolean; onProgress?: (p: IngestProgress) => void } = {}) {
    return ingestRelease(folder, { store, layout, ffmpeg: null, ...extra });
  }

  /** Runs an ingest that must be refused, and checks that it changed nothing. */
  async function refused(folder: string, file: string | null, problem: RegExp, extra: { ffmpeg?: string | null } = {}): Promise<IngestError> {
    const before = await listTree(layout.root);
    const releasesBefore = await store.listReleases();
    let error: unknown;
    try {
      await ingest(folder, extra);
    } catch (err) {
      error = err;
    }
    expect(error, 'the ingest must be refused').to.be.instanceOf(IngestError);
    const e = error as IngestError;
    expect(e.file).to.equal(file);
    expect(e.problems.join('; ')).to.match(problem);
    expect(e.message.startsWith(`${file ?? 'release'}: `)).to.equal(true);
    // The staging area may have been created, but must be left empty.
    const withoutTmp = (tree: string[]) => tree.filter((f) => f !== 'tmp/');
    expect(withoutTmp(await listTree(layout.root))).to.deep.equal(withoutTmp(before));
    expect(await store.listReleases()).to.deep.equal(releasesBefore);
    return e;
  }

  it('ingests a good release: stems decoded to 48 kHz stereo float, artwork, analysis, one record', async () => {
    const steps = new Set<string>();
    const { record, notes } = await ingest(await fixture(), { onProgress: (p) => steps.add(p.step) });
    expect(notes).to.deep.equal([]);
    expect([...steps]).to.include.members(['manifest', 'decode', 'analyse', 'artwork', 'commit']);
    expect(record.frames).to.equal(8 * 48000);
    expect(record.stems.map((s) => s.id)).to.deep.equal(['drums', 'bass', 'lead']);
    expect(record.stems[0]!.peak).to.be.closeTo(0.4, 0.01);
    expect(record.artwork.map((a) => [a.id, a.mimeType, a.width, a.height])).to.deep.equal([
      ['cover', 'image/png', 256, 256],
      ['waves', 'image/jpeg', 320, 180],
    ]);
    const wav = await readWavFloat32(layout.stemFile('fixture', 'bass'));
    expect([wav.sampleRate, wav.channels, wav.frames]).to.deep.equal([48000, 2, 8 * 48000]);
    expect(record.artwork[0]!.palette!.length).to.be.within(1, 5);
    expect(fs.existsSync(path.join(layout.releaseDir('fixture'), 'visual-pack', 'pack.json'))).to.equal(true);
    const analysis = JSON.parse(fs.readFileSync(path.join(layout.releaseDir('fixture'), 'analysis.json'), 'utf8'));
    expect(analysis.envelopes.mix).to.have.length(8 * 20);
    expect(await store.getRelease('fixture')).to.deep.equal(record);
    expect(fs.readdirSync(layout.tmpDir)).to.deep.equal([]);
  });

  it('resamples a 44.1 kHz stem to 48 kHz and says so', async () => {
    const folder = await fixture({ stems: [{ id: 'a' }, { id: 'b', sampleRate: 44100 }] });
    const { record, notes } = await ingest(folder);
    expect(notes).to.deep.equal(['stems/b.wav: 44100 Hz, resampled to 48000 Hz']);
    expect(record.frames).to.be.closeTo(8 * 48000, 2);
  });

  it('plays a mono stem on both channels and says so', async () => {
    const { notes } = await ingest(await fixture({ stems: [{ id: 'a' }, { id: 'b', channels: 1 }] }));
    expect(notes).to.deep.equal(['stems/b.wav: mono, played on both channels']);
  });

  it('refuses a release whose manifest is missing', async () => {
    const folder = await fixture();
    await fsp.rm(path.join(folder, 'release.json'));
    await refused(folder, 'release.json', /is missing/);
  });

  it('refuses a manifest that is not JSON', async () => {
    const folder = await fixture();
    await fsp.writeFile(path.join(folder, 'release.json'), '{ "id": ');
    await refused(folder, 'release.json', /is not valid JSON/);
  });

  it('refuses a manifest that fails the schema, naming the field', async () => {
    const folder = await fixture({ manifest: (m) => ({ ...m, title: '' }) });
    await refused(folder, 'release.json', /^title: must not be empty/);
  });

  it('refuses a missing stem, naming it', async () => {
    const folder = await fixture();
    await fsp.rm(path.join(folder, 'stems', 'bass.wav'));
    await refused(folder, 'stems/bass.wav', /is missing/);
  });

  it('refuses a stem that is not audio, naming it', async () => {
    const folder = await fixture();
    await fsp.writeFile(path.join(folder, 'stems', 'bass.wav'), 'this is not a wave file at all, just text');
    await refused(folder, 'stems/bass.wav', /^is not an audio stem: found text; accepted stems are WAV/);
  });

  it('refuses a truncated WAV stem, naming it', async () => {
    const folder = await fixture();
    const file = path.join(folder, 'stems', 'lead.wav');
    const bytes = await fsp.readFile(file);
    await fsp.writeFile(file, bytes.subarray(0, 30));
    await refused(folder, 'stems/lead.wav', /^is not a usable WAV file: fmt chunk declares 16 bytes but the file ends after 10/);
  });

  it('refuses stems of different lengths, naming them', async () => {
    const folder = await fixture({ stems: [{ id: 'a', seconds: 8 }, { id: 'b', seconds: 6 }] });
    await refused(folder, 'stems/b.wav', /different lengths \(stems\/a\.wav 8\.000 s, stems\/b\.wav 6\.000 s\)/);
  });

  it('refuses an unsupported format in the manifest', async () => {
    const folder = await fixture({ manifest: (m) => ({ ...m, stems: [{ id: 'a', title: 'A', file: 'stems/a.ogg' }] }) });
    await refused(folder, 'release.json', /stems\[0\]\.file: must end in \.wav, \.flac, \.mp3/);
  });

  it('refuses a path that escapes the folder', async () => {
    const folder = await fixture({ manifest: (m) => ({ ...m, stems: [{ id: 'a', title: 'A', file: '../a.wav' }] }) });
    await refused(folder, 'release.json', /must stay inside the release folder/);
  });

  it('refuses a link inside the folder that leads outside it', async () => {
    const folder = await fixture();
    const outside = path.join(work.path, 'outside.wav');
    await fsp.copyFile(path.join(folder, 'stems', 'bass.wav'), outside);
    await fsp.rm(path.join(folder, 'stems', 'bass.wav'));
    await fsp.symlink(outside, path.join(folder, 'stems', 'bass.wav'));
    await refused(folder, 'stems/bass.wav', /is a link that leads outside the release folder/);
  });

  it('refuses an excerpt that ends after the music', async () => {
    const folder = await fixture({ excerpts: [{ id: 'late', title: 'Late', startSec: 2, endSec: 20 }] });
    await refused(folder, 'release.json', /excerpts\[0\] \("late"\) ends at 20 s, after the end of the stems \(8\.00 s\)/);
  });

  it('refuses artwork that is not an image, or damaged, naming it', async () => {
    const folder = await fixture();
    await fsp.writeFile(path.join(folder, 'artwork', 'cover.png'), 'GIF89a not a png');
    await refused(folder, 'artwork/cover.png', /is not a PNG or JPEG image/);
    const png = await fsp.readFile(path.join(folder, 'artwork', 'waves.jpg'));
    await writeFixtureRelease(folder);
    await fsp.writeFile(path.join(folder, 'artwork', 'waves.jpg'), png.subarray(0, 400));
    await refused(folder, 'artwork/waves.jpg', /is damaged|damaged header/);
  });

  it('refuses a JPEG named .png', async () => {
    const folder = await fixture({ artwork: [{ id: 'cover', file: 'cover.png', format: 'jpeg' }] });
    await refused(folder, 'artwork/cover.png', /is named \.png but holds a JPEG image/);
  });

  it('refuses an image whose header claims a huge size before decoding it', async () => {
    const folder = await fixture();
    const file = path.join(folder, 'artwork', 'cover.png');
    const bytes = await fsp.readFile(file);
    bytes.writeUInt32BE(40000, 16);
    bytes.writeUInt32BE(40000, 20);
    await fsp.writeFile(file, bytes);
    await refused(folder, 'artwork/cover.png', /is 40000x40000; at most 8192x8192/);
  });

  it('refuses a release where no artwork has the artist\'s consent', async () => {
    const folder = await fixture({ artwork: [{ id: 'cover', consent: false }] });
    await refused(folder, 'release.json', /no artwork has the artist's consent/);
  });

  it('keeps artwork without consent on record but never shows it', async () => {
    const { record, notes } = await ingest(await fixture({ artwork: [{ id: 'cover' }, { id: 'secret', consent: false }] }));
    expect(record.artwork.find((a) => a.id === 'secret')!.consent).to.equal(false);
    expect(notes).to.deep.equal(['artwork/secret.png: no consent from the artist, kept on record but never used']);
  });

  it('refuses an existing id unless asked to replace it, and replaces it whole', async () => {
    await ingest(await fixture());
    const again = await fixture({ stems: [{ id: 'solo', seconds: 9 }] });
    await refused(again, 'release.json', /exists already \(ingest with --replace/);
    const { record } = await ingest(again, { replace: true });
    expect(record.stems.map((s) => s.id)).to.deep.equal(['solo']);
    expect(fs.readdirSync(path.join(layout.releaseDir('fixture'), 'stems'))).to.deep.equal(['solo.wav']);
    expect(fs.readdirSync(layout.tmpDir)).to.deep.equal([]);
  });

  it('cleans up its staging folder when cancelled', async () => {
    const controller = new AbortController();
    const p = ingestRelease(await fixture(), {
      store,
      layout,
      ffmpeg: null,
      signal: controller.signal,
      onProgress: (s) => {
        if (s.step === 'artwork') controller.abort(new Error('stop'));
      },
    });
    let error: unknown;
    await p.catch((e: unknown) => (error = e));
    expect((error as Error).message).to.equal('stop');
    expect(fs.readdirSync(layout.tmpDir)).to.deep.equal([]);
    expect(await store.listReleases()).to.deep.equal([]);
  });

  describe('with native ffmpeg', () => {
    before(function () {
      requireComponent('ffmpeg', commandExists('ffmpeg'), this);
    });

    for (const decoder of ['ffmpeg', 'builtin'] as const) {
      it(`ingests FLAC and MP3 stems with the ${decoder} decoder`, async () => {
        const folder = await fixture({
          stems: [
            { id: 'a', file: 'a.flac' },
            { id: 'b', file: 'b.mp3', frequencyHz: 330 },
            { id: 'c', file: 'c.wav', sampleRate: 44100 },
          ],
        });
        const { record, notes } = await ingest(folder, { ffmpeg: decoder === 'ffmpeg' ? 'ffmpeg' : null });
        expect(record.durationSec).to.be.closeTo(8, 0.05);
        expect(record.stems.every((s) => s.peak > 0.3 && s.peak < 0.45)).to.equal(true);
        expect(notes[0]).to.equal('stems/c.wav: 44100 Hz, resampled to 48000 Hz');
      });
    }

    it('refuses a .wav file that holds MP3 data', async () => {
      const folder = await fixture({ stems: [{ id: 'a' }, { id: 'b', file: 'b.mp3' }] });
      await fsp.rename(path.join(folder, 'stems', 'b.mp3'), path.join(folder, 'stems', 'b.wav'));
      const m = JSON.parse(await fsp.readFile(path.join(folder, 'release.json'), 'utf8'));
      m.stems[1].file = 'stems/b.wav';
      await fsp.writeFile(path.join(folder, 'release.json'), JSON.stringify(m));
      await refused(folder, 'stems/b.wav', /mp3|MP3/, { ffmpeg: 'ffmpeg' });
    });
  });
});

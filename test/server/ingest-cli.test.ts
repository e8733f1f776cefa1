import { expect } from 'chai';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { REPO_ROOT } from '../support/server-process.ts';
import { listTree, writeFixtureRelease } from '../support/release-fixture.ts';
import { tempDir } from '../support/temp.ts';

describe('npm run ingest', function () {
  this.timeout(60_000);
  let work: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    work = await tempDir('ingest-cli');
  });
  afterEach(async () => {
    await work.remove();
  });

  async function ingest(folder: string, ...args: string[]) {
    const child = spawn(process.execPath, ['server/catalog/ingest-cli.ts', folder, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'] ?? '', DATA_DIR: path.join(work.path, 'data'), VISUAL_MODEL_TRAIN: 'off' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    return { code, stdout, stderr };
  }

  it('ingests a good release folder, showing progress, and says what it added', async () => {
    const folder = path.join(work.path, 'good');
    await writeFixtureRelease(folder, { stems: [{ id: 'a' }, { id: 'b', sampleRate: 44100 }] });
    const r = await ingest(folder);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/^decode stems\/a\.wav \d+%$/m);
    expect(r.stderr).to.match(/^analyse stems\/b\.wav/m);
    expect(r.stderr).to.include('note: stems/b.wav: 44100 Hz, resampled to 48000 Hz');
    expect(r.stdout.trim()).to.equal('ingested "Fixture" by Test Artist as fixture: 2 stems, 8.0 s, 1 excerpts, 2 artwork images');
  });

  it('prints what is wrong with a broken release and changes nothing', async () => {
    const folder = path.join(work.path, 'broken');
    await writeFixtureRelease(folder, { stems: [{ id: 'a', seconds: 8 }, { id: 'b', seconds: 5 }] });
    await fsp.mkdir(path.join(work.path, 'data'), { recursive: true });
    const before = await listTree(path.join(work.path, 'data'));
    const r = await ingest(folder);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include('ingest refused, nothing was changed:\n  stems/b.wav: stems have different lengths (stems/a.wav 8.000 s, stems/b.wav 5.000 s)');
    const after = (await listTree(path.join(work.path, 'data'))).filter((f) => !['releases/', 'tmp/'].includes(f));
    expect(after).to.deep.equal(before);
  });

  it('names a release folder that does not exist', async () => {
    const r = await ingest(path.join(work.path, 'nowhere'));
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/nowhere: the folder .*nowhere does not exist or cannot be read/);
  });
});

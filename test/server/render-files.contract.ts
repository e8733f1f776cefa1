// The contract every RenderFiles (server/clips/render-files.ts) must keep: what the
// runner stages and commits is what a download reads, whole, under its name; a
// render's files go together; bad names and ids reach nothing. Run it against each one.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import type { RenderFiles } from '../../server/clips/render-files.ts';
import { newRenderId, RENDER_FILES } from '../../server/clips/render-job.ts';

const stage = async (files: RenderFiles, id: string, contents: Record<string, string>) => {
  const dir = await files.stagingDir(id);
  const staged = [];
  for (const [name, text] of Object.entries(contents)) {
    await fsp.writeFile(path.join(dir, name), text);
    staged.push({ name, path: path.join(dir, name), contentType: RENDER_FILES.get(name)! });
  }
  return staged;
};

export function renderFilesContract(name: string, open: () => Promise<{ files: RenderFiles; close(): Promise<void> }>): void {
  describe(`render files contract: ${name}`, () => {
    let files: RenderFiles;
    let close: () => Promise<void>;
    beforeEach(async () => {
      ({ files, close } = await open());
    });
    afterEach(async () => {
      await close();
    });

    it('a committed file reads back whole under its name; a file never committed reads as none', async () => {
      const id = newRenderId();
      expect(await files.localPath(id, 'clip.mp4')).to.equal(null);
      await files.commit(id, await stage(files, id, { 'clip.mp4': 'video bytes', 'manifest.json': '{"a":1}' }));
      expect(fs.readFileSync((await files.localPath(id, 'clip.mp4'))!, 'utf8')).to.equal('video bytes');
      expect(fs.readFileSync((await files.localPath(id, 'manifest.json'))!, 'utf8')).to.equal('{"a":1}');
      expect(await files.localPath(id, 'clip.m4a')).to.equal(null);
      // Another render's files are its own.
      expect(await files.localPath(newRenderId(), 'clip.mp4')).to.equal(null);
    });

    it('a staging folder is cleared of what a killed render left half-written', async () => {
      const id = newRenderId();
      const dir = await files.stagingDir(id);
      await fsp.writeFile(path.join(dir, 'clip.mp4.1234-abcd.part'), 'half');
      const again = await files.stagingDir(id);
      expect(fs.readdirSync(again).filter((f) => f.endsWith('.part'))).to.deep.equal([]);
    });

    it('a render run again replaces its files whole', async () => {
      const id = newRenderId();
      await files.commit(id, await stage(files, id, { 'loop.gif': 'first' }));
      await files.commit(id, await stage(files, id, { 'loop.gif': 'second' }));
      expect(fs.readFileSync((await files.localPath(id, 'loop.gif'))!, 'utf8')).to.equal('second');
    });

    it('refuses names a render does not keep, and ids that are not render ids, touching nothing', async () => {
      const id = newRenderId();
      const dir = await files.stagingDir(id);
      await fsp.writeFile(path.join(dir, 'evil.sh'), 'x');
      let err: unknown;
      await files.commit(id, [{ name: 'evil.sh', path: path.join(dir, 'evil.sh'), contentType: 'text/plain' }]).catch((e: unknown) => (err = e));
      expect(err).to.be.instanceOf(Error);
      expect(await files.localPath(id, 'evil.sh')).to.equal(null);
      for (const bad of ['../../etc', 'ABCDEF0123456789', '', `${id}/..`]) {
        expect(await files.localPath(bad, 'clip.mp4'), bad).to.equal(null);
        let e: unknown;
        await files.stagingDir(bad).catch((x: unknown) => (e = x));
        expect(e, bad).to.be.instanceOf(Error);
      }
      expect(await files.localPath(id, '../manifest.json')).to.equal(null);
    });

    it('a commit of a file that was never staged fails, and nothing is kept under its name', async () => {
      const id = newRenderId();
      const dir = await files.stagingDir(id);
      let err: unknown;
      await files.commit(id, [{ name: 'clip.mp4', path: path.join(dir, 'clip.mp4'), contentType: 'video/mp4' }]).catch((e: unknown) => (err = e));
      expect(err).to.be.instanceOf(Error);
      expect(await files.localPath(id, 'clip.mp4')).to.equal(null);
    });

    it('remove takes all of a render\'s files, and only its', async () => {
      const a = newRenderId();
      const b = newRenderId();
      await files.commit(a, await stage(files, a, { 'clip.mp4': 'a', 'clip.m4a': 'a' }));
      await files.commit(b, await stage(files, b, { 'clip.mp4': 'b' }));
      await files.remove(a);
      expect(await files.localPath(a, 'clip.mp4')).to.equal(null);
      expect(await files.localPath(a, 'clip.m4a')).to.equal(null);
      expect(fs.readFileSync((await files.localPath(b, 'clip.mp4'))!, 'utf8')).to.equal('b');
      // Removing what is not there is not an error.
      await files.remove(a);
    });
  });
}

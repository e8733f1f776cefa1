// RenderFiles on the local disk (the embedded default): the contract, and the layout
// every earlier version used, DATA_DIR/renders/<id>/<name>, so that renders made
// before keep being served.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { LocalRenderFiles } from '../../server/clips/render-files.ts';
import { newRenderId } from '../../server/clips/render-job.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { tempDir } from '../support/temp.ts';
import { renderFilesContract } from './render-files.contract.ts';

renderFilesContract('local disk', async () => {
  const dir = await tempDir('render-files');
  return { files: new LocalRenderFiles(new DataLayout(dir.path)), close: () => dir.remove() };
});

describe('render files on the local disk', () => {
  it('keeps DATA_DIR/renders/<id>/<name>: the render folder is its own staging folder, and a file there is served as it is', async () => {
    const dir = await tempDir('render-files');
    try {
      const layout = new DataLayout(dir.path);
      const files = new LocalRenderFiles(layout);
      const id = newRenderId();
      // A render made by an earlier version: the files in place, nothing staged.
      await fsp.mkdir(path.join(layout.rendersDir, id), { recursive: true });
      await fsp.writeFile(path.join(layout.rendersDir, id, 'clip.mp4'), 'old');
      expect(await files.localPath(id, 'clip.mp4')).to.equal(path.join(dir.path, 'renders', id, 'clip.mp4'));
      expect(await files.stagingDir(id)).to.equal(path.join(dir.path, 'renders', id));
      // Staged elsewhere on the same disk: moved into place by the commit.
      const elsewhere = path.join(dir.path, 'tmp', 'loop.gif');
      await fsp.mkdir(path.dirname(elsewhere), { recursive: true });
      await fsp.writeFile(elsewhere, 'gif');
      await files.commit(id, [{ name: 'loop.gif', path: elsewhere, contentType: 'image/gif' }]);
      expect(fs.existsSync(elsewhere)).to.equal(false);
      expect(fs.readdirSync(path.join(dir.path, 'renders', id)).sort()).to.deep.equal(['clip.mp4', 'loop.gif']);
    } finally {
      await dir.remove();
    }
  });
});

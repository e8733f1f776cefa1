import { expect } from 'chai';
import { DataLayout, PathEscapeError, resolveInside } from '../../server/store/paths.ts';

describe('resolveInside', () => {
  it('joins paths that stay inside the root', () => {
    expect(resolveInside('/data', 'releases', 'x', 'a.wav')).to.equal('/data/releases/x/a.wav');
    expect(resolveInside('/data', 'a/./b/../c')).to.equal('/data/a/c');
  });

  for (const trick of ['..', '../etc/passwd', 'a/../../b', '/etc/passwd', 'a/\0b', '..\u002fx']) {
    it(`refuses ${JSON.stringify(trick)}`, () => {
      expect(() => resolveInside('/data', trick)).to.throw(PathEscapeError);
    });
  }

  it('refuses a sibling that shares the root as a prefix', () => {
    expect(() => resolveInside('/data', '../data2/x')).to.throw(PathEscapeError);
  });

  it('keeps ids that came from outside inside DATA_DIR', () => {
    const layout = new DataLayout('/data');
    expect(layout.stemFile('demo', 'drums')).to.equal('/data/releases/demo/stems/drums.wav');
    expect(() => layout.releaseDir('../../etc')).to.throw(PathEscapeError);
    expect(() => layout.artworkFile('demo', '../../../secrets.json')).to.throw(PathEscapeError);
  });
});

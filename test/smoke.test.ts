import { expect } from 'chai';
describe('toolchain', () => {
  it('runs TypeScript tests on Node 24 or later', () => {
    const major = Number(process.versions.node.split('.')[0]);
    expect(major).to.be.at.least(24);
  });
});

import { expect } from 'chai';
import fs from 'node:fs';

describe('toolchain', () => {
  it('runs TypeScript tests on Node 24 or later', () => {
    const major = Number(process.versions.node.split('.')[0]);
    expect(major).to.be.at.least(24);
  });

  it("the README's quickstart asks for the Node that package.json's engines name, and no other", () => {
    const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
    const lock = JSON.parse(fs.readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8')) as { packages: Record<string, { engines?: { node?: string } }> };
    const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const major = /^>=(\d+)$/.exec(pkg.engines.node)?.[1];
    expect(major, `engines.node ${pkg.engines.node} is ">=N"`).to.be.a('string');
    expect(lock.packages['']!.engines?.node).to.equal(pkg.engines.node);
    const asked = [...readme.matchAll(/Node(?:\.js)? (\d+) or later/g)].map((m) => m[1]);
    expect(asked).to.deep.equal([major]);
    expect(readme).to.include(`"engines": { "node": "${pkg.engines.node}" }`);
  });
});

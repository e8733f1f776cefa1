import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { demoDataDir } from '../support/demo-data.ts';
import { freePort } from '../support/redis.ts';
import { spawnServer } from '../support/server-process.ts';
import { tempDir } from '../support/temp.ts';

describe('the server process', function () {
  this.timeout(120_000);
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function dataDir(): Promise<string> {
    const d = await demoDataDir();
    cleanups.push(d.remove);
    return d.path;
  }

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`serves, then on ${signal} stops accepting, closes what it opened and exits 0`, async () => {
      const port = await freePort();
      const p = spawnServer({ PORT: String(port), DATA_DIR: await dataDir() });
      cleanups.push(async () => p.child.kill('SIGKILL'));
      await p.waitFor(/Remixroom is running/);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).to.equal(200);
      p.child.kill(signal);
      const { code } = await p.exited;
      expect(code, p.output()).to.equal(0);
      expect(p.output()).to.match(/"msg":"shut down"/);
      await expectRefused(port);
    });
  }

  it('with LOG_FORMAT=pretty, says where to open the app on its first line, then writes readable lines, not JSON', async () => {
    const port = await freePort();
    const p = spawnServer({ PORT: String(port), DATA_DIR: await dataDir(), LOG_FORMAT: 'pretty' });
    cleanups.push(async () => p.child.kill('SIGKILL'));
    await p.waitFor(/Remixroom is running/);
    expect((await fetch(`http://127.0.0.1:${port}/api/releases`)).status).to.equal(200);
    await p.waitFor(/GET \/api\/releases 200 \d+ms/);
    p.child.kill('SIGTERM');
    expect((await p.exited).code, p.output()).to.equal(0);
    expect(p.stderr()).to.equal('');
    const lines = p.output().split('\n').filter(Boolean);
    expect(lines[0]).to.match(new RegExp(`^\\d\\d:\\d\\d:\\d\\d INFO  Remixroom is running: open http://127\\.0\\.0\\.1:${port}/ `));
    // The start-up details follow it.
    expect(lines.slice(1).some((l) => / INFO  live streams use the /.test(l)), p.output()).to.equal(true);
    for (const line of lines) {
      expect(line, line).to.match(/^\d\d:\d\d:\d\d (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) \S/);
      expect(() => JSON.parse(line), line).to.throw();
    }
    expect(lines.at(-1)).to.match(/ INFO  shut down$/);
  });

  it('refuses to start on a port that is taken, in one line, with a non-zero exit', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    cleanups.push(() => new Promise((r) => blocker.close(r)));
    const port = (blocker.address() as net.AddressInfo).port;
    const p = spawnServer({ PORT: String(port), DATA_DIR: await dataDir() });
    const { code } = await p.exited;
    expect(code).to.equal(1);
    expect(p.stderr().trim()).to.equal(
      `remixroom: failed to start: port ${port} on 127.0.0.1 is already in use; stop the other program or set PORT`,
    );
  });

  it('refuses a bad configuration value, naming it', async () => {
    const p = spawnServer({ PORT: 'eighty' });
    const { code } = await p.exited;
    expect(code).to.equal(1);
    expect(p.stderr().trim()).to.equal('remixroom: failed to start: bad configuration: PORT="eighty" must be a whole number from 0 to 65535');
  });

  it('refuses a DATA_DIR it cannot write', async () => {
    const dir = await tempDir('notdir');
    cleanups.push(dir.remove);
    const file = path.join(dir.path, 'a-file');
    fs.writeFileSync(file, 'not a folder');
    const p = spawnServer({ PORT: String(await freePort()), DATA_DIR: path.join(file, 'data') });
    const { code } = await p.exited;
    expect(code).to.equal(1);
    expect(p.stderr().trim()).to.match(/^remixroom: failed to start: DATA_DIR .*a-file\/data is not a writable folder \(ENOTDIR\)/);
  });

  it('makes the demo release on a first start with an empty DATA_DIR', async () => {
    const dir = await tempDir('first-start');
    cleanups.push(dir.remove);
    const port = await freePort();
    const p = spawnServer({ PORT: String(port), DATA_DIR: dir.path });
    cleanups.push(async () => p.child.kill('SIGKILL'));
    await p.waitFor(/Remixroom is running/, 90_000);
    expect(p.output()).to.match(/making the demo release/);
    const { releases } = (await (await fetch(`http://127.0.0.1:${port}/api/releases`)).json()) as { releases: { id: string }[] };
    expect(releases.map((r) => r.id)).to.deep.equal(['remixroom-demo']);
    expect(fs.readdirSync(path.join(dir.path, 'tmp'))).to.deep.equal([]);
    p.child.kill('SIGTERM');
    expect((await p.exited).code).to.equal(0);
  });

  it('cancels a first start on SIGTERM and leaves no half-made release', async () => {
    const dir = await tempDir('cancel-start');
    cleanups.push(dir.remove);
    const p = spawnServer({ PORT: String(await freePort()), DATA_DIR: dir.path });
    cleanups.push(async () => p.child.kill('SIGKILL'));
    await p.waitFor(/making the demo release/);
    p.child.kill('SIGTERM');
    const { code } = await p.exited;
    expect(code, p.output()).to.equal(0);
    expect(p.output()).to.match(/start cancelled/);
    expect(fs.readdirSync(path.join(dir.path, 'tmp'))).to.deep.equal([]);
    expect(fs.readdirSync(path.join(dir.path, 'releases'))).to.deep.equal([]);
  });
});

async function expectRefused(port: number): Promise<void> {
  const refused = await fetch(`http://127.0.0.1:${port}/healthz`).then(
    () => false,
    () => true,
  );
  expect(refused, 'connections after shutdown are refused').to.equal(true);
}

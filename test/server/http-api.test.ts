import { expect } from 'chai';
import http from 'node:http';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import type { ReleaseListItem, ReleaseView } from '../../shared/api-types.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

describe('HTTP API of a running server', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t?.close();
  });

  it('answers /healthz while the process runs', async () => {
    const res = await fetch(`${t.url}/healthz`);
    expect(res.status).to.equal(200);
    expect(await res.json()).to.deep.equal({ status: 'ok' });
  });

  it('answers /readyz with each check once the store is open', async () => {
    const res = await fetch(`${t.url}/readyz`);
    expect(res.status).to.equal(200);
    expect(await res.json()).to.deep.equal({ status: 'ready', checks: { store: 'ok' } });
  });

  it('serves Prometheus metrics with process metrics and the project counters', async () => {
    await fetch(`${t.url}/api/releases`);
    const res = await fetch(`${t.url}/metrics`);
    expect(res.headers.get('content-type')).to.match(/^text\/plain/);
    const text = await res.text();
    expect(text).to.match(/^remixroom_process_cpu_seconds_total /m);
    expect(text).to.match(/^remixroom_releases 1$/m);
    expect(text).to.match(/^remixroom_http_requests_total\{method="GET",route="\/api\/releases\/",status="200"\} [1-9]/m);
    // The render queue, by state (nothing is rendering here).
    for (const state of ['queued', 'running', 'retrying']) expect(text).to.match(new RegExp(`^remixroom_render_jobs\\{state="${state}"\\} 0$`, 'm'));
  });

  it('lists the demo release first', async () => {
    const res = await fetch(`${t.url}/api/releases`);
    expect(res.status).to.equal(200);
    const { releases } = (await res.json()) as { releases: ReleaseListItem[] };
    expect(releases[0]!.id).to.equal(DEMO_RELEASE_ID);
    expect(releases[0]!.durationSec).to.be.within(60, 90);
    expect(releases[0]!.coverUrl).to.be.a('string');
  });

  it('describes one release with its stems, excerpts, artwork and rules, but never a stem file', async () => {
    const res = await fetch(`${t.url}/api/releases/${DEMO_RELEASE_ID}`);
    const release = (await res.json()) as ReleaseView;
    expect(release.stems.map((s) => s.id)).to.deep.equal(['drums', 'bass', 'harmony', 'lead']);
    expect(release.excerpts.length).to.be.at.least(2);
    expect(release.artwork.length).to.be.at.least(4);
    expect(release.artwork.every((a) => a.tags.length > 0)).to.equal(true);
    expect(release.rules.clips.freeSeconds).to.equal(30);
    expect(JSON.stringify(release)).not.to.match(/\.wav|stems\//);
  });

  it('serves artwork images as PNG', async () => {
    const { artwork } = (await (await fetch(`${t.url}/api/releases/${DEMO_RELEASE_ID}`)).json()) as ReleaseView;
    const res = await fetch(`${t.url}${artwork[0]!.url}`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.equal('image/png');
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect([...bytes.slice(1, 4)].map((c) => String.fromCharCode(c)).join('')).to.equal('PNG');
  });

  it('answers an unknown release with a JSON not_found error', async () => {
    const res = await fetch(`${t.url}/api/releases/nope`);
    expect(res.status).to.equal(404);
    expect(await res.json()).to.deep.equal({ error: { code: 'not_found', message: 'no release "nope"' } });
  });

  it('answers path tricks in artwork names with not_found, never a file outside the release', async () => {
    for (const trick of ['..%2F..%2Fremixroom.sqlite', '%2e%2e%2fsecrets.json', 'cover%00.png']) {
      const res = await fetch(`${t.url}/api/releases/${DEMO_RELEASE_ID}/artwork/${trick}`);
      expect(res.status, trick).to.equal(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).to.equal('not_found');
    }
  });

  it('answers unknown API routes with a JSON error', async () => {
    const res = await fetch(`${t.url}/api/nothing-here`);
    expect(res.status).to.equal(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).to.equal('not_found');
  });

  it('refuses a malformed or oversized JSON body with a clear error', async () => {
    const bad = await fetch(`${t.url}/api/releases`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":' });
    expect(bad.status).to.equal(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).to.equal('invalid_body');
    const big = await fetch(`${t.url}/api/releases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ x: 'a'.repeat(200_000) }),
    });
    expect(big.status).to.equal(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).to.equal('payload_too_large');
  });

  it('serves the site icon as /favicon.ico and /favicon.svg, cacheable, without a built web app', async () => {
    const ico = await fetch(`${t.url}/favicon.ico`);
    expect(ico.status).to.equal(200);
    expect(ico.headers.get('content-type')).to.equal('image/x-icon');
    expect(ico.headers.get('cache-control')).to.match(/^public, max-age=[1-9]\d*$/);
    const bytes = new Uint8Array(await ico.arrayBuffer());
    // An ICO header (reserved 0, type 1) holding PNG images.
    expect([...bytes.slice(0, 4)]).to.deep.equal([0, 0, 1, 0]);
    expect(Buffer.from(bytes).includes(Buffer.from('\x89PNG', 'latin1'))).to.equal(true);
    const svg = await fetch(`${t.url}/favicon.svg`);
    expect(svg.status).to.equal(200);
    expect(svg.headers.get('content-type')).to.equal('image/svg+xml');
    expect(svg.headers.get('cache-control')).to.match(/^public, max-age=[1-9]\d*$/);
    expect(await svg.text()).to.match(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    // Revalidation (node:http: fetch turns a conditional request into a no-cache one).
    const again = await new Promise<number | undefined>((resolve, reject) =>
      http.get(`${t.url}/favicon.ico`, { headers: { 'if-none-match': ico.headers.get('etag')! } }, (res) => resolve(res.resume().statusCode)).on('error', reject),
    );
    expect(again).to.equal(304);
  });

  it('gives every request an id, keeping a sane one the caller sent', async () => {
    const mine = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'abc-123' } });
    expect(mine.headers.get('x-request-id')).to.equal('abc-123');
    const forged = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'a b\tc' } });
    expect(forged.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
  });
});

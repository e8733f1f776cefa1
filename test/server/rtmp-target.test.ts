// Where an RTMP push may go: schemes, keys, ports, and every non-public address refused
// (the server must not become a scanner of its own network), with a resolver injected.
import { expect } from 'chai';
import { checkRtmpTarget, nonPublicReason, RtmpTargetError, type RtmpTargetOptions } from '../../server/live/rtmp-target.ts';

const KEY = 'abcd-1234-efgh-5678';
const PUBLIC_V4 = '142.250.74.46';

function resolver(answers: Record<string, string[]>): (host: string) => Promise<string[]> {
  return async (host) => {
    const found = answers[host];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found;
  };
}

const publicOnly: RtmpTargetOptions = { allowPrivate: false, lookup: resolver({ 'a.rtmp.youtube.com': [PUBLIC_V4, '2a00:1450:4001:80b::200e'] }) };

async function refusal(url: string, key = KEY, opts: RtmpTargetOptions = publicOnly): Promise<RtmpTargetError> {
  try {
    await checkRtmpTarget(url, key, opts);
  } catch (err) {
    expect(err).to.be.instanceOf(RtmpTargetError);
    if (key) expect((err as Error).message).not.to.include(key);
    return err as RtmpTargetError;
  }
  throw new Error(`${url} was accepted`);
}

describe('RTMP targets', () => {
  it('a public ingest is accepted: the key is kept apart, the display never holds it, the address is pinned', async () => {
    const t = await checkRtmpTarget('  rtmp://a.rtmp.youtube.com/live2 ', KEY, publicOnly);
    expect(t.display).to.equal('rtmp://a.rtmp.youtube.com/live2');
    expect(t.display).not.to.include(KEY);
    expect(t).to.include({ tls: false, host: 'a.rtmp.youtube.com', address: PUBLIC_V4, port: 1935, app: 'live2', key: KEY, tcUrl: 'rtmp://a.rtmp.youtube.com/live2' });
    expect(t.url.href).to.equal(`rtmp://a.rtmp.youtube.com/live2/${KEY}`);
  });

  it('rtmps defaults to port 443; an explicit port and a two-part application are kept', async () => {
    const tls = await checkRtmpTarget('rtmps://a.rtmp.youtube.com/live2', KEY, publicOnly);
    expect(tls).to.include({ tls: true, port: 443 });
    const t = await checkRtmpTarget(`rtmp://${PUBLIC_V4}:1936/app/instance`, KEY, publicOnly);
    expect(t).to.include({ port: 1936, app: 'app/instance', address: PUBLIC_V4, display: `rtmp://${PUBLIC_V4}:1936/app/instance` });
  });

  it('a Facebook-style key with ?, & and = is accepted (it reaches ffmpeg as an option, not in a URL)', async () => {
    const t = await checkRtmpTarget('rtmps://a.rtmp.youtube.com/rtmp', 'FB-1234-0-AbCd?s_bl=1&s_sw=0&a=Ab', publicOnly);
    expect(t.key).to.equal('FB-1234-0-AbCd?s_bl=1&s_sw=0&a=Ab');
  });

  it('schemes other than rtmp and rtmps are refused, naming the scheme', async () => {
    for (const url of ['http://a.rtmp.youtube.com/live2', 'https://a.rtmp.youtube.com/live2', 'file:///etc/passwd', 'rtmpt://a.rtmp.youtube.com/live2', 'rtmpe://a.rtmp.youtube.com/live2', 'srt://a.rtmp.youtube.com:9000', 'gopher://x/', 'tcp://a.rtmp.youtube.com:1935', 'concat:rtmp://a', 'a.rtmp.youtube.com/live2', '']) {
      const err = await refusal(url);
      expect(err.message, url).to.match(/only rtmp:\/\/ and rtmps:\/\/|missing/);
    }
  });

  it('user info, a query, a fragment, a missing application or host, ports 0 and above 65535 are refused', async () => {
    expect((await refusal('rtmp://user:pass@a.rtmp.youtube.com/live2')).message).to.match(/user name or password/);
    expect((await refusal('rtmp://a.rtmp.youtube.com/live2?x=1')).message).to.match(/query/);
    expect((await refusal('rtmp://a.rtmp.youtube.com/live2#x')).message).to.match(/fragment/);
    expect((await refusal('rtmp://a.rtmp.youtube.com/')).message).to.match(/no application/);
    expect((await refusal('rtmp://a.rtmp.youtube.com')).message).to.match(/no application/);
    expect((await refusal('rtmp:///live2')).message).to.match(/no host|cannot be read/);
    expect((await refusal('rtmp://a.rtmp.youtube.com:0/live2')).message).to.match(/port/);
    expect((await refusal('rtmp://a.rtmp.youtube.com:65536/live2')).message).to.match(/cannot be read|port/);
    expect((await refusal('rtmp://a.rtmp.youtube.com/live/..%2fx')).message).to.match(/application/);
    expect((await refusal('rtmp://a_b!.example/live')).message).to.match(/host/);
  });

  it('keys that are empty, too long, or hold whitespace, control characters, non-ASCII, / or # are refused', async () => {
    expect((await refusal('rtmp://a.rtmp.youtube.com/live2', '')).message).to.match(/missing/);
    expect((await refusal('rtmp://a.rtmp.youtube.com/live2', 'k'.repeat(513))).message).to.match(/longer than 512/);
    await checkRtmpTarget('rtmp://a.rtmp.youtube.com/live2', 'k'.repeat(512), publicOnly);
    for (const key of ['a b', 'a\tb', 'ab\n', 'a\u0000b', 'a\u007fb', 'clé', 'a/b', 'a#b', 'a\\b']) {
      const err = await refusal('rtmp://a.rtmp.youtube.com/live2', key);
      expect(err.message, JSON.stringify(key)).to.match(/stream key/);
    }
  });

  it('every non-public IPv4 range is refused, with the reason, and a public neighbour accepted', async () => {
    const refused: [string, RegExp][] = [
      ['0.0.0.0', /unspecified/], ['0.1.2.3', /unspecified/], ['10.0.0.1', /private/], ['10.255.255.255', /private/],
      ['100.64.0.1', /carrier-grade/], ['100.127.255.254', /carrier-grade/], ['127.0.0.1', /loopback/], ['127.9.9.9', /loopback/],
      ['169.254.169.254', /link-local/], ['172.16.0.1', /private/], ['172.31.255.255', /private/], ['192.168.1.1', /private/],
      ['192.0.0.8', /reserved/], ['192.0.2.1', /documentation/], ['198.18.0.1', /benchmarking/], ['198.51.100.7', /documentation/],
      ['203.0.113.9', /documentation/], ['224.0.0.1', /multicast/], ['239.255.255.250', /multicast/], ['240.0.0.1', /reserved/],
      ['255.255.255.255', /broadcast/],
    ];
    for (const [address, why] of refused) {
      expect(nonPublicReason(address), address).to.match(why);
      const err = await refusal(`rtmp://${address}/live`);
      expect(err.message, address).to.match(why).and.to.include(address);
    }
    for (const address of ['1.1.1.1', '8.8.8.8', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0', '192.169.0.1', PUBLIC_V4]) {
      expect(nonPublicReason(address), address).to.equal(null);
      await checkRtmpTarget(`rtmp://${address}/live`, KEY, publicOnly);
    }
  });

  it('IPv6 loopback, unspecified, unique-local, link-local, site-local, multicast, documentation and the IPv4-carrying forms of private addresses are refused', async () => {
    const refused = [
      '::1', '::', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'febf::1', 'fec0::1', 'ff02::1', 'ff0e::1', '2001:db8::1', '3fff::1',
      '2001::1', '100::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '::ffff:0:192.168.0.1',
      '::127.0.0.1', '::1.2.3.4', '64:ff9b::127.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b:1::8.8.8.8', '2002:7f00:1::1', '2002:c0a8:101::',
    ];
    for (const address of refused) {
      const err = await refusal(`rtmp://[${address}]/live`);
      expect(err.message, address).to.match(/does not push to non-public addresses/);
    }
    for (const address of ['2a00:1450:4001:80b::200e', '2001:4860:4860::8888', '::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '2002:808:808::1']) {
      expect(nonPublicReason(address), address).to.equal(null);
      await checkRtmpTarget(`rtmp://[${address}]:1935/live`, KEY, publicOnly);
    }
    expect((await refusal('rtmp://[fe80::1%25eth0]/live')).message).to.match(/cannot be read/);
    const v6 = await checkRtmpTarget('rtmp://[2a00:1450:4001:80b::200e]/live', KEY, publicOnly);
    expect(v6).to.include({ host: '2a00:1450:4001:80b::200e', address: '2a00:1450:4001:80b::200e', display: 'rtmp://[2a00:1450:4001:80b::200e]/live' });
  });

  it('a host name that resolves to a private address is refused, naming both', async () => {
    const lookup = resolver({ 'ingest.evil.example': ['10.0.0.5'], 'meta.evil.example': ['169.254.169.254'], 'v6.evil.example': ['::1'] });
    for (const host of ['ingest.evil.example', 'meta.evil.example', 'v6.evil.example']) {
      const err = await refusal(`rtmp://${host}/live`, KEY, { allowPrivate: false, lookup });
      expect(err.message).to.include(host).and.to.match(/non-public/);
    }
  });

  it('a host name with public and private answers is refused (every address is checked)', async () => {
    const lookup = resolver({ 'mixed.example': [PUBLIC_V4, '2a00:1450:4001:80b::200e', '127.0.0.1'] });
    const err = await refusal('rtmp://mixed.example/live', KEY, { allowPrivate: false, lookup });
    expect(err.message).to.include('127.0.0.1').and.to.match(/loopback/);
  });

  it('a host that does not resolve is refused with the resolver\'s code', async () => {
    const err = await refusal('rtmp://nowhere.example/live', KEY, { allowPrivate: false, lookup: resolver({}) });
    expect(err.message).to.match(/could not be resolved \(ENOTFOUND\)/);
  });

  it('the system resolver is used without an injected one: a decimal loopback spelling is still loopback', async () => {
    // getaddrinfo reads 127.1 as 127.0.0.1; the URL keeps it as written (rtmp: is not a special scheme).
    expect((await refusal('rtmp://127.1/live', KEY, { allowPrivate: false })).message).to.match(/loopback/);
    expect((await refusal('rtmp://localhost/live', KEY, { allowPrivate: false })).message).to.match(/loopback/);
  });

  it('with allowPrivate, loopback and private ingests are accepted (an nginx-rtmp beside the server)', async () => {
    const t = await checkRtmpTarget('rtmp://127.0.0.1:19350/live', KEY, { allowPrivate: true });
    expect(t).to.include({ address: '127.0.0.1', port: 19350, app: 'live' });
    const named = await checkRtmpTarget('rtmp://ingest.lan/live', KEY, { allowPrivate: true, lookup: resolver({ 'ingest.lan': ['192.168.1.20'] }) });
    expect(named).to.include({ host: 'ingest.lan', address: '192.168.1.20', tcUrl: 'rtmp://ingest.lan/live' });
    // Never an ingest, allowed or not.
    for (const address of ['0.0.0.0', '224.0.0.1', '255.255.255.255', '[::]', '[ff02::1]']) {
      expect((await refusal(`rtmp://${address}/live`, KEY, { allowPrivate: true })).message, address).to.match(/unspecified|multicast|broadcast/);
    }
  });
});

import { expect } from 'chai';
import { createLogger, formatEntry, PrettyConsole, WAIT_STEP } from '../../server/logger.ts';

/** A PrettyConsole writing into an array, and a logger over it. */
function prettyLogger(holdStartup = false) {
  const written: string[] = [];
  const out = new PrettyConsole({ out: { write: (text: string) => written.push(text) }, holdStartup });
  const log = createLogger({ logLevel: 'info' }, out);
  const lines = () => written.join('').split('\n').filter(Boolean);
  return { out, log, lines };
}

describe('logger: the pretty console', () => {
  it('writes one readable line an event: time, level, message, fields', () => {
    const { log, lines } = prettyLogger();
    log.child({ roomId: 'r1' }).warn({ members: 3, reason: 'the host left' }, 'room closing');
    expect(lines()).to.have.length(1);
    expect(lines()[0]).to.match(/^\d\d:\d\d:\d\d WARN  room closing roomId=r1 members=3 reason="the host left"$/);
    expect(() => JSON.parse(lines()[0]!)).to.throw();
  });

  it('writes a request as method, path, status and time, without its query or headers', () => {
    const line = formatEntry({
      level: 30,
      time: '2026-12-06T23:01:02.000Z',
      service: 'remixroom',
      req: { id: 'x', method: 'GET', url: '/api/downloads/abc?sig=secret', headers: { host: 'h' } },
      res: { statusCode: 200, headers: {} },
      responseTime: 12.4,
      msg: 'request completed',
    });
    expect(line).to.match(/^\d\d:\d\d:\d\d INFO  GET \/api\/downloads\/abc\?… 200 12ms$/);
  });

  it("shows an error's type and message on its line", () => {
    const { log, lines } = prettyLogger();
    log.error({ err: new TypeError('bad thing') }, 'shutdown failed');
    expect(lines()[0]).to.match(/ERROR shutdown failed error="TypeError: bad thing"$/);
  });

  it('keeps redaction: a token never shows', () => {
    const { log, lines } = prettyLogger();
    log.info({ grant: { token: 'secret-token' } }, 'granted');
    expect(lines()[0]).not.to.include('secret-token');
    expect(lines()[0]).to.include('[redacted]');
  });

  it('holds start-up details until ready, then shows the announcement first; warnings and wait steps show at once', () => {
    const { out, log, lines } = prettyLogger(true);
    log.info('using native ffmpeg');
    log.info(WAIT_STEP, 'making the demo release (first start only)');
    log.warn('redis is slow');
    expect(lines().map((l) => l.slice(9))).to.deep.equal(['INFO  making the demo release (first start only)', 'WARN  redis is slow']);
    out.ready(() => log.info({ url: 'http://127.0.0.1:3000' }, 'Remixroom is running: open http://127.0.0.1:3000/'));
    log.info('later');
    expect(lines().map((l) => l.slice(9))).to.deep.equal([
      'INFO  making the demo release (first start only)',
      'WARN  redis is slow',
      'INFO  Remixroom is running: open http://127.0.0.1:3000/',
      'INFO  using native ffmpeg',
      'INFO  later',
    ]);
  });

  it('shows what it held when released (a start that failed), and holds nothing after', () => {
    const { out, log, lines } = prettyLogger(true);
    log.info('using native ffmpeg');
    expect(lines()).to.deep.equal([]);
    out.release();
    out.release();
    log.info('start cancelled');
    expect(lines().map((l) => l.slice(9))).to.deep.equal(['INFO  using native ffmpeg', 'INFO  start cancelled']);
  });
});

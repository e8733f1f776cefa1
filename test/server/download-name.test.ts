// The names clips are saved under, and the Content-Disposition that carries them: from the
// release and the time, safe on every file system whatever an artist typed into the title.
import { expect } from 'chai';
import { asciiFallback, contentDisposition, downloadName, MAX_NAME_BYTES } from '../../server/clips/download-name.ts';

const clip = { kind: 'clip', fromSec: 42, toSec: 72 } as const;

/** What a file system or a browser would refuse or misread in a saved name. */
function expectSafe(name: string): void {
  expect(name, name).not.to.match(/[/\\:*?"<>|\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/u);
  expect(name, name).not.to.match(/^[.\s-]/);
  expect(name, name).not.to.include('..');
  expect(Buffer.byteLength(name)).to.be.at.most(MAX_NAME_BYTES);
}

/** The two names a client reads from the header: the ASCII one and the exact one. */
function parseDisposition(header: string): { ascii: string; exact: string } {
  const m = /^attachment; filename="([^"]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]+)$/.exec(header);
  expect(m, header).to.not.equal(null);
  return { ascii: m![1]!, exact: decodeURIComponent(m![2]!) };
}

describe('download names', () => {
  it('names a clip by artist, title and its time in the room', () => {
    expect(downloadName({ artist: 'Nova Lane', title: 'Night Drive' }, clip, '.mp4')).to.equal('Nova Lane - Night Drive (Remixroom clip 0m42s-1m12s).mp4');
    expect(downloadName({ artist: 'Nova Lane', title: 'Night Drive' }, { kind: 'clip', fromSec: 3599.6, toSec: 3630 }, '.m4a')).to.equal('Nova Lane - Night Drive (Remixroom clip 60m00s-60m30s).m4a');
    expect(downloadName({ artist: 'Nova Lane', title: 'Night Drive' }, { kind: 'loop', seconds: 4 }, '.gif')).to.equal('Nova Lane - Night Drive (Remixroom visuals loop 4s).gif');
    expect(downloadName({ artist: '', title: '' }, clip, '.mp4')).to.equal('Remixroom clip 0m42s-1m12s.mp4');
  });

  it('makes hostile titles safe: path separators, dots, quotes, newlines, control and bidi characters', () => {
    const hostile = [
      { artist: '../../etc', title: 'passwd' },
      { artist: '..\\..\\Windows', title: 'System32\\evil' },
      { artist: 'A "quoted" name', title: "it's \"fine\"" },
      { artist: 'Line\r\nBreak', title: 'Tab\tNUL\u0000end' },
      { artist: 'Spoof', title: 'clip\u202Egpj.exe' },
      { artist: '...', title: '. .' },
      { artist: 'CON', title: 'aux:*?<>|' },
    ];
    for (const release of hostile) {
      const name = downloadName(release, clip, '.mp4');
      expectSafe(name);
      expect(name).to.match(/Remixroom clip 0m42s-1m12s\)?\.mp4$/);
      const { ascii, exact } = parseDisposition(contentDisposition(name));
      expect(exact).to.equal(name);
      expectSafe(ascii);
      expect(ascii).to.match(/\.mp4$/);
    }
    expect(downloadName({ artist: '...', title: '. .' }, clip, '.mp4')).to.equal('Remixroom clip 0m42s-1m12s.mp4');
    expect(downloadName({ artist: 'Spoof', title: 'clip\u202Egpj.exe' }, clip, '.mp4')).to.equal('Spoof - clip gpj.exe (Remixroom clip 0m42s-1m12s).mp4');
    expect(downloadName({ artist: '../../etc', title: 'passwd' }, clip, '.mp4')).to.equal('etc - passwd (Remixroom clip 0m42s-1m12s).mp4');
    // An extension that is not one is dropped rather than trusted.
    expect(downloadName({ artist: 'a', title: 'b' }, clip, '/../x')).to.equal('a - b (Remixroom clip 0m42s-1m12s)');
  });

  it('keeps emoji and accents in the exact name, gives an ASCII fallback, and never cuts a character in half', () => {
    const name = downloadName({ artist: 'Beyoncé', title: 'Café 🔥👩🏽‍🚀' }, clip, '.mp4');
    expect(name).to.equal('Beyoncé - Café 🔥👩🏽‍🚀 (Remixroom clip 0m42s-1m12s).mp4');
    const { ascii, exact } = parseDisposition(contentDisposition(name));
    expect(exact).to.equal(name);
    expect(ascii).to.equal('Beyonce - Cafe (Remixroom clip 0m42s-1m12s).mp4');
    expect(asciiFallback(downloadName({ artist: '🔥', title: '' }, clip, '.mp4'))).to.equal('Remixroom clip 0m42s-1m12s.mp4');
    const long = downloadName({ artist: '👩🏽‍🚀'.repeat(60), title: 'é'.repeat(300) }, clip, '.mp4');
    expectSafe(long);
    expect(long).to.match(/^(👩🏽‍🚀)+ \(Remixroom clip 0m42s-1m12s\)\.mp4$/u);
    expect(parseDisposition(contentDisposition(long)).exact).to.equal(long);
  });
});

// The clip code's modules import one way: routes → service → queue → runner → files
// and store, with no cycle among server/clips, server/work and media/render (a static
// scan of their import lines, type-only imports and worker entry files included).
// And the render output's folder is named in one module only (render-files.ts), so
// that another way of keeping render files (object storage) replaces that one module.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCANNED = ['server/clips', 'server/work', 'media/render'];

/** Every module a file names: static imports and re-exports (type-only too), dynamic imports, worker entries. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const specs = new Set<string>();
  const patterns = [
    /^\s*(?:import|export)\s[^'";]*?\sfrom\s+['"]([^'"]+)['"]/gms,
    /^\s*import\s+['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) specs.add(m[1]!);
  return [...specs].filter((s) => s.startsWith('.')).map((s) => path.relative(ROOT, path.resolve(path.dirname(file), s)));
}

/** The scanned modules and, for each, the scanned modules it imports. */
function graph(): Map<string, string[]> {
  const files = SCANNED.flatMap((dir) =>
    fs
      .readdirSync(path.join(ROOT, dir))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => path.join(dir, f)),
  );
  const set = new Set(files);
  return new Map(files.map((f) => [f, importsOf(path.join(ROOT, f)).filter((i) => set.has(i))]));
}

/** One cycle per strongly connected component of more than one module (or a module importing itself). */
function cycles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (g.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** Whether `to` can be reached from `from`. */
function reaches(g: Map<string, string[]>, from: string, to: string): boolean {
  const seen = new Set<string>();
  const todo = [from];
  while (todo.length > 0) {
    const v = todo.pop()!;
    if (v === to) return true;
    if (seen.has(v)) continue;
    seen.add(v);
    todo.push(...(g.get(v) ?? []));
  }
  return false;
}

function tsFilesUnder(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f));
}

describe('clip modules: one way through', () => {
  it('the scan sees the imports it must (a check of the check)', () => {
    const g = graph();
    expect(g.get('server/clips/clip-service.ts')).to.include('server/clips/render-queue.ts');
    expect(g.get('server/work/threaded-render-runner.ts')).to.include('server/work/render-worker.ts');
    expect(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).to.deep.equal([['a', 'b', 'c']]);
  });

  it('no cycle among server/clips, server/work and media/render', () => {
    expect(cycles(graph())).to.deep.equal([]);
  });

  it('the service sits above the queue, the queue above the runner, the runner above the files; never back up', () => {
    const g = graph();
    const service = 'server/clips/clip-service.ts';
    const order = [service, 'server/clips/render-queue.ts', 'server/clips/render-runner.ts', 'server/clips/render-files.ts'];
    for (let i = 0; i < order.length; i++) {
      for (let j = i + 1; j < order.length; j++) expect(reaches(g, order[j]!, order[i]!), `${order[j]} reaches ${order[i]}`).to.equal(false);
    }
    // The service does not run renders: neither the runner nor the render threads are below it.
    for (const runner of ['server/clips/render-runner.ts', 'server/work/threaded-render-runner.ts', 'server/work/render-worker.ts']) {
      expect(reaches(g, service, runner), `${service} reaches ${runner}`).to.equal(false);
    }
    // Nothing that renders or queues knows the service.
    for (const v of g.keys()) if (v !== service) expect(reaches(g, v, service), `${v} reaches the service`).to.equal(false);
  });

  it('only render-files.ts names the renders folder (besides its definition and the start that creates it)', () => {
    const allowed = new Set(['server/store/paths.ts', 'server/server.ts', 'server/clips/render-files.ts']);
    const naming = tsFilesUnder('server').filter((f) => !allowed.has(f) && /\brendersDir\b/.test(fs.readFileSync(path.join(ROOT, f), 'utf8')));
    expect(naming).to.deep.equal([]);
  });

  it('one module spawns ffmpeg to encode frames, and one drives every encode: the renderers pipe their frames through ffmpeg-pipe.ts', () => {
    const read = (f: string) => fs.readFileSync(path.join(ROOT, f), 'utf8');
    expect(tsFilesUnder('media/render').filter((f) => /\bspawn\(/.test(read(f)))).to.deep.equal(['media/render/native-encoder-worker.ts']);
    // Starting an encoder and feeding it frames: only the pipe (and the encoder that defines it) outside the tests.
    const driving = [...tsFilesUnder('media'), ...tsFilesUnder('server')].filter((f) => /\b(pickEncoder|nativeEncoder|wasmEncoder)\(|\.nextFrame\(/.test(read(f)));
    expect(driving.sort()).to.deep.equal(['media/render/encoder.ts', 'media/render/ffmpeg-pipe.ts']);
    const g = graph();
    for (const r of ['media/render/clip-render.ts', 'media/render/loop-render.ts']) expect(g.get(r), r).to.include('media/render/ffmpeg-pipe.ts');
  });
});

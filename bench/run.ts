// `npm run bench -- <name> [args...]`: runs bench/<name>.bench.ts. A benchmark may
// print progress lines; the runner prints its figures as the LAST line, one JSON
// object, and exits 0 (or prints an error line and exits 1 when it failed).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const SUFFIX = '.bench.ts';
const NAME = /^[a-z0-9-]+$/;

interface BenchModule {
  run(args: string[]): Promise<Record<string, unknown>>;
}

function available(): string[] {
  return fs
    .readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith(SUFFIX))
    .map((f) => f.slice(0, -SUFFIX.length))
    .sort();
}

function usage(problem: string): never {
  console.error(`bench: ${problem}`);
  console.error('usage: npm run bench -- <name> [args...]');
  console.error(`available: ${available().join(', ') || '(none)'}`);
  process.exit(2);
}

/** Ends the process once everything written to stdout has gone out. */
function finish(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  if (name === undefined) usage('which benchmark?');
  if (!NAME.test(name)) usage(`"${name}" is not a benchmark name (lowercase letters, digits and dashes)`);
  const file = path.join(BENCH_DIR, `${name}${SUFFIX}`);
  if (!fs.existsSync(file)) usage(`no benchmark "${name}"`);

  // A benchmark registers its clean-up on 'exit' (a server child, client processes);
  // a signal becomes an ordinary exit so that it runs.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`bench: ${signal}; stopping`);
      process.exit(130);
    });
  }

  const mod = (await import(pathToFileURL(file).href)) as Partial<BenchModule>;
  if (typeof mod.run !== 'function') {
    console.error(`bench: ${name}${SUFFIX} exports no run(args) function`);
    return finish(1);
  }
  let result: Record<string, unknown>;
  try {
    result = await mod.run(args);
  } catch (err) {
    console.error(`bench: ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    console.log(JSON.stringify({ bench: name, error: err instanceof Error ? err.message : String(err) }));
    return finish(1);
  }
  console.log(JSON.stringify({ bench: name, ...result }));
  finish(0);
}

await main();

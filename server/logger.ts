import { pino, type Logger } from 'pino';
import type { Config } from './config.ts';

export type { Logger };

/** A log field for a step people wait on (the demo release's first build): a console shows it at once, even during start-up. */
export const WAIT_STEP = { waitStep: true } as const;

/**
 * The process's root logger; rooms and sessions take children of it ({ roomId, sessionId }).
 * `json` (pino's lines, for a collector) goes to the destination given, or stdout; `pretty`
 * without a destination writes one readable line per event to stdout.
 */
export function createLogger(config: Pick<Config, 'logLevel'> & { logFormat?: Config['logFormat'] }, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level: config.logLevel,
      base: { service: 'remixroom' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['req.headers.authorization', 'req.query.token', 'req.query.k', '*.token', '*.hostToken'], censor: '[redacted]' },
    },
    destination ?? (config.logFormat === 'pretty' ? new PrettyConsole() : undefined),
  );
}

/** The format a logger writes (for threads that make their own logger). */
export function logFormatOf(log: Logger): Config['logFormat'] {
  return (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] instanceof PrettyConsole ? 'pretty' : 'json';
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const WARN = 40;
/** Fields every line has, or that the readable line shows in its own way. */
const OMITTED = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname', 'err', 'req', 'res', 'responseTime', 'waitStep']);
const MAX_VALUE_CHARS = 80;

/**
 * A pino destination for people at a terminal: one short line per event,
 * `HH:MM:SS LEVEL message key=value …`; a request reads `GET /path 200 12ms`.
 *
 * With `holdStartup`, the details logged while the process starts (info and below)
 * wait until `ready()`: the line `ready` announces comes first, so that the first
 * thing on the screen is where to open the app. Warnings, errors and wait steps
 * show at once; `release()` shows what is held (a start that failed or stopped).
 */
export class PrettyConsole implements pino.DestinationStream {
  readonly #out: { write(text: string): unknown };
  #held: string[] | null;

  constructor(opts: { out?: { write(text: string): unknown }; holdStartup?: boolean } = {}) {
    this.#out = opts.out ?? process.stdout;
    this.#held = opts.holdStartup ? [] : null;
  }

  write(line: string): void {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.#out.write(line.endsWith('\n') ? line : `${line}\n`);
      return;
    }
    const text = `${formatEntry(entry)}\n`;
    if (this.#held && Number(entry['level']) < WARN && entry['waitStep'] !== true) this.#held.push(text);
    else this.#out.write(text);
  }

  /** Start-up is over: what `announce` logs is shown first, then the details held meanwhile. */
  ready(announce: () => void): void {
    const held = this.#held;
    this.#held = null;
    announce();
    if (held?.length) this.#out.write(held.join(''));
  }

  /** Shows what is held and holds nothing more. Idempotent. */
  release(): void {
    const held = this.#held;
    this.#held = null;
    if (held?.length) this.#out.write(held.join(''));
  }
}

/** One pino entry as one readable line. */
export function formatEntry(entry: Record<string, unknown>): string {
  const time = typeof entry['time'] === 'string' || typeof entry['time'] === 'number' ? new Date(entry['time']) : new Date();
  const clock = Number.isNaN(time.getTime()) ? '--:--:--' : time.toTimeString().slice(0, 8);
  const level = (LEVELS[Number(entry['level'])] ?? 'LOG').padEnd(5);
  const parts = [clock, level, requestSummary(entry) ?? String(entry['msg'] ?? '')];
  for (const [key, value] of Object.entries(entry)) {
    if (OMITTED.has(key) || value === undefined) continue;
    // Already said in the message (the address in "open http://…").
    if (typeof value === 'string' && value.includes('://') && parts[2]!.includes(value)) continue;
    parts.push(`${key}=${showValue(value)}`);
  }
  const err = entry['err'] as { type?: unknown; message?: unknown } | undefined;
  if (err && typeof err === 'object') parts.push(`error=${showValue(`${typeof err.type === 'string' ? `${err.type}: ` : ''}${String(err.message ?? '')}`)}`);
  return parts.join(' ');
}

/** pino-http's line, `GET /api/releases 200 3ms`: the path without its query (which may hold signed links). */
function requestSummary(entry: Record<string, unknown>): string | null {
  const req = entry['req'] as { method?: unknown; url?: unknown } | undefined;
  if (!req || typeof req !== 'object' || typeof req.method !== 'string' || typeof req.url !== 'string') return null;
  const res = entry['res'] as { statusCode?: unknown } | undefined;
  const q = req.url.indexOf('?');
  const path = q === -1 ? req.url : `${req.url.slice(0, q)}?…`;
  const status = res && typeof res === 'object' && typeof res.statusCode === 'number' ? ` ${res.statusCode}` : '';
  const ms = typeof entry['responseTime'] === 'number' ? ` ${Math.round(entry['responseTime'])}ms` : '';
  const msg = typeof entry['msg'] === 'string' && entry['msg'] !== 'request completed' ? ` (${entry['msg']})` : '';
  return `${req.method} ${path}${status}${ms}${msg}`;
}

function showValue(value: unknown): string {
  const text = typeof value === 'string' ? (/[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value) : JSON.stringify(value) ?? String(value);
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text;
}

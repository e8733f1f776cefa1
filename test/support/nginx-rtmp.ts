// A real RTMP ingest for the push tests: Debian's nginx with libnginx-mod-rtmp, in a temporary
// folder on a free loopback port, one process (daemon off, master_process off) stopped by its
// PID. Publishing is allowed by nginx-rtmp's on_publish callback to a small HTTP server here
// (2xx allows, 403 refuses), so a wrong stream key is really refused by the ingest. Every
// published stream is recorded to <root>/rec/<key>.flv for the test to read back.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { commandExists } from './components.ts';
import { freePort, stopChild } from './redis.ts';

export const NGINX_RTMP_MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';

export function nginxRtmpAvailable(): boolean {
  return (commandExists('nginx') || commandExists('/usr/sbin/nginx')) && fs.existsSync(NGINX_RTMP_MODULE);
}

function nginxBinary(): string {
  return commandExists('nginx') ? 'nginx' : '/usr/sbin/nginx';
}

export class TestNginxRtmp {
  readonly root: string;
  readonly port: number;
  /** Stream keys the ingest accepts (the on_publish callback's answer). */
  readonly allowedKeys = new Set<string>();
  /** Every publish the callback was asked about: the name (key) and tcUrl nginx-rtmp reported. */
  readonly publishes: { name: string; tcUrl: string; allowed: boolean }[] = [];
  readonly #hook: http.Server;
  #child: ChildProcess | null = null;
  #output = '';

  private constructor(root: string, port: number, hook: http.Server) {
    this.root = root;
    this.port = port;
    this.#hook = hook;
  }

  static async create(): Promise<TestNginxRtmp> {
    const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-rtmp-'));
    await fsp.mkdir(path.join(root, 'rec'));
    const hook = http.createServer();
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    const server = new TestNginxRtmp(root, await freePort(), hook);
    hook.on('request', (req, res) => server.#onPublish(req, res));
    try {
      await server.start();
    } catch (err) {
      hook.close();
      await fsp.rm(root, { recursive: true, force: true });
      throw err;
    }
    return server;
  }

  /** rtmp://127.0.0.1:<port>/live — the application to push to (the key is the stream name). */
  get url(): string {
    return `rtmp://127.0.0.1:${this.port}/live`;
  }

  /** The recording of the stream published under `key` (written while it is published). */
  recording(key: string): string {
    return path.join(this.root, 'rec', `${key}.flv`);
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** Starts nginx (again, on the same port, after stop()); resolves once the port accepts connections. */
  async start(): Promise<void> {
    if (this.#child) return;
    const hookPort = (this.#hook.address() as net.AddressInfo).port;
    const conf = path.join(this.root, 'nginx.conf');
    await fsp.writeFile(
      conf,
      [
        `load_module ${NGINX_RTMP_MODULE};`,
        'daemon off;',
        'master_process off;',
        `pid ${path.join(this.root, 'nginx.pid')};`,
        `error_log ${path.join(this.root, 'error.log')} warn;`,
        'events { worker_connections 64; }',
        'rtmp {',
        '  server {',
        `    listen 127.0.0.1:${this.port};`,
        '    application live {',
        '      live on;',
        '      record all;',
        `      record_path ${path.join(this.root, 'rec')};`,
        '      record_unique off;',
        `      on_publish http://127.0.0.1:${hookPort}/publish;`,
        '    }',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    // -e: the error log before the config is read (Debian's default, /var/log/nginx, may not be writable).
    const child = spawn(nginxBinary(), ['-p', this.root, '-c', conf, '-e', path.join(this.root, 'startup.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#output = '';
    child.stdout!.on('data', (b: Buffer) => (this.#output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (this.#output += b.toString()));
    this.#child = child;
    child.once('exit', () => {
      if (this.#child === child) this.#child = null;
    });
    const deadline = Date.now() + 10_000;
    while (!(await accepts(this.port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await stopChild(child, 'SIGKILL');
        this.#child = null;
        let log = '';
        try {
          log = await fsp.readFile(path.join(this.root, 'error.log'), 'utf8');
        } catch {
          // none yet
        }
        throw new Error(`nginx (rtmp) did not start on 127.0.0.1:${this.port}:\n${this.#output}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops nginx by its PID (SIGTERM, SIGKILL after 5 s); publishers are disconnected. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (child) await stopChild(child);
  }

  /** Stops nginx and its callback server and removes the folder. */
  async remove(): Promise<void> {
    await this.stop();
    await new Promise<void>((resolve) => this.#hook.close(() => resolve()));
    await fsp.rm(this.root, { recursive: true, force: true });
  }

  #onPublish(req: http.IncomingMessage, res: http.ServerResponse): void {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (text: string) => (body += text));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const name = form.get('name') ?? '';
      const allowed = this.allowedKeys.has(name);
      this.publishes.push({ name, tcUrl: form.get('tcurl') ?? '', allowed });
      res.statusCode = allowed ? 200 : 403;
      res.end();
    });
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

let shared: Promise<TestNginxRtmp> | null = null;

/** The run's one nginx-rtmp, started on first use. */
export function sharedNginxRtmp(): Promise<TestNginxRtmp> {
  shared ??= TestNginxRtmp.create().then((server) => {
    // A run killed before its afterAll must not leave nginx behind.
    process.once('exit', () => {
      const pid = server.pid;
      if (pid !== null) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    });
    return server;
  });
  return shared;
}

/** For the root afterAll: stops the shared nginx, if one was started, and removes its folder. */
export async function stopSharedNginxRtmp(): Promise<void> {
  if (!shared) return;
  const started = shared;
  shared = null;
  const server = await started.catch(() => null);
  await server?.remove();
}

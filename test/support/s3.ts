// A real S3 server for the tests: Ceph's radosgw on a throwaway single-node
// cluster (one monitor, one OSD on the in-memory `memstore`, authentication off),
// in a temp folder. Started once per test run (`sharedS3()`), stopped by its
// PIDs in the root afterAll of test/support/hooks.ts (`stopSharedS3()`).
//
// Fault tests get a gateway of their own (`s3.extraGateway()`): a second radosgw
// on the same cluster and its own port, that they may pause (SIGSTOP), stop and
// restart without disturbing the shared one other suites use.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { commandExists } from './components.ts';
import { freePort } from './redis.ts';

const run = promisify(execFile);

export interface TestS3 {
  /** e.g. http://127.0.0.1:41234 (path-style addressing: forcePathStyle). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** A fresh, empty bucket of its own for a test. */
  newBucket(): Promise<string>;
  /** A second radosgw on the same cluster, for fault tests; stop it when done. */
  extraGateway(): Promise<TestGateway>;
}

export interface TestGateway {
  endpoint: string;
  /** SIGSTOP: the gateway holds its connections and answers nothing. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** Stops the process (connections are refused afterwards). */
  stop(): Promise<void>;
  /** Starts it again on the same port and waits until it answers. */
  restart(): Promise<void>;
}

export function s3Available(): boolean {
  return ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph'].every((c) => commandExists(c));
}

const REGION = 'us-east-1';
// The OSD picks its ports from this range; it lies below Linux's ephemeral range
// (32768+), from which freePort() picks the monitor's and the gateways' ports, so
// that the OSD cannot take a port just handed out for a gateway.
const OSD_PORTS = { min: 6800, max: 7300 };

let shared: Promise<CephCluster> | null = null;

/** The run's one S3 server, started on first use. */
export async function sharedS3(): Promise<TestS3> {
  shared ??= CephCluster.start();
  const cluster = await shared;
  return cluster.handle();
}

/** Stops the shared cluster, if one was started. For the root afterAll. */
export async function stopSharedS3(): Promise<void> {
  if (!shared) return;
  const pending = shared;
  shared = null;
  const cluster = await pending.catch(() => null);
  await cluster?.stop();
}

class CephCluster {
  readonly #dir: string;
  readonly #conf: string;
  readonly #children = new Set<ChildProcess>();
  readonly #endpoint: string;
  readonly #keys: { accessKeyId: string; secretAccessKey: string };
  #gatewayCount = 0;
  #buckets = 0;

  private constructor(dir: string, endpoint: string, keys: { accessKeyId: string; secretAccessKey: string }) {
    this.#dir = dir;
    this.#conf = path.join(dir, 'ceph.conf');
    this.#endpoint = endpoint;
    this.#keys = keys;
  }

  static async start(): Promise<CephCluster> {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-ceph-'));
    const keys = { accessKeyId: `RR${crypto.randomBytes(9).toString('hex').toUpperCase()}`, secretAccessKey: crypto.randomBytes(20).toString('hex') };
    const monPort = await freePort();
    const rgwPort = await freePort();
    const cluster = new CephCluster(dir, `http://127.0.0.1:${rgwPort}`, keys);
    try {
      await cluster.#boot(monPort, rgwPort);
      // After the daemons' own exit hooks (registered first, so run first): their folder goes too.
      process.once('exit', cluster.#removeOnExit);
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  handle(): TestS3 {
    return {
      endpoint: this.#endpoint,
      ...this.#keys,
      region: REGION,
      newBucket: () => this.#newBucket(),
      extraGateway: () => this.#extraGateway(),
    };
  }

  async #boot(monPort: number, rgwPort: number): Promise<void> {
    const dir = this.#dir;
    const fsid = crypto.randomUUID();
    for (const sub of ['run', 'log', 'mon.a', 'osd.0']) await fsp.mkdir(path.join(dir, sub), { recursive: true });
    await fsp.writeFile(this.#conf, cephConf(dir, fsid, monPort));
    const conf = ['--conf', this.#conf];
    await run('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, path.join(dir, 'monmap'), ...conf]);
    await run('ceph-mon', [...conf, '--mkfs', '-i', 'a', '--monmap', path.join(dir, 'monmap')]);
    this.#daemon('ceph-mon', [...conf, '-i', 'a', '-f'], 'mon.a');
    const osdUuid = crypto.randomUUID();
    // Registers the OSD with the monitor (which it waits for) and answers its id: 0.
    await run('ceph', [...conf, '--connect-timeout', '20', 'osd', 'new', osdUuid], { timeout: 30_000 });
    await run('ceph-osd', [...conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid], { timeout: 30_000 });
    this.#daemon('ceph-osd', [...conf, '-i', '0', '-f'], 'osd.0');
    // radosgw creates its pools (waiting for the OSD) and then answers HTTP.
    this.#gateway(rgwPort);
    await waitForHttp(this.#endpoint, 60_000, () => this.#logTail());
    await run('radosgw-admin', [...conf, 'user', 'create', '--uid=remixroom-tests', '--display-name=remixroom tests', `--access-key=${this.#keys.accessKeyId}`, `--secret=${this.#keys.secretAccessKey}`], { timeout: 30_000 });
  }

  #daemon(command: string, args: string[], logName: string): ChildProcess {
    // What the daemons print goes beside their logs, for an error message.
    const out = fs.openSync(path.join(this.#dir, 'log', `${logName}.out`), 'a');
    const child = spawn(command, args, { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    // A run that ends without its afterAll (a crash, Ctrl-C) must not leave daemons behind.
    const onExit = () => void child.kill('SIGKILL');
    process.once('exit', onExit);
    child.once('exit', () => process.off('exit', onExit));
    return child;
  }

  #gateway(port: number, name = 'rgw.main'): ChildProcess {
    return this.#daemon('radosgw', ['--conf', this.#conf, '-n', `client.${name}`, '-f', `--rgw-frontends=beast endpoint=127.0.0.1:${port}`], name);
  }

  async #logTail(): Promise<string> {
    const logs = await fsp.readdir(path.join(this.#dir, 'log')).catch(() => []);
    let out = '';
    for (const name of logs) {
      const text = await fsp.readFile(path.join(this.#dir, 'log', name), 'utf8').catch(() => '');
      out += `--- ${name}\n${text.slice(-1500)}\n`;
    }
    return out;
  }

  async #newBucket(): Promise<string> {
    const name = `rr-test-${process.pid}-${++this.#buckets}-${crypto.randomBytes(3).toString('hex')}`;
    // Loaded here, not at the top: the root hooks import this file in every run.
    const { CreateBucketCommand, S3Client } = await import('@aws-sdk/client-s3');
    const client = new S3Client({ endpoint: this.#endpoint, region: REGION, forcePathStyle: true, credentials: this.#keys });
    try {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    } finally {
      client.destroy();
    }
    return name;
  }

  async #extraGateway(): Promise<TestGateway> {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const name = `rgw.extra${++this.#gatewayCount}`;
    let child = this.#gateway(port, name);
    await waitForHttp(endpoint, 30_000, () => this.#logTail());
    return {
      endpoint,
      pause: () => void child.kill('SIGSTOP'),
      resume: () => void child.kill('SIGCONT'),
      stop: async () => {
        child.kill('SIGCONT');
        await stopProcess(child, 'SIGTERM', 500);
      },
      restart: async () => {
        child.kill('SIGCONT');
        await stopProcess(child, 'SIGTERM', 500);
        child = this.#gateway(port, name);
        await waitForHttp(endpoint, 30_000, () => this.#logTail());
      },
    };
  }

  readonly #removeOnExit = (): void => fs.rmSync(this.#dir, { recursive: true, force: true });

  async stop(): Promise<void> {
    process.off('exit', this.#removeOnExit);
    const children = [...this.#children];
    // Gateways first (they are clients of the cluster; radosgw often lingers on SIGTERM,
    // hence the short grace), then the OSD with SIGKILL: on
    // SIGTERM it spends seconds saving its in-memory store, which is thrown away anyway.
    const byKind = (cmd: string) => children.filter((c) => c.spawnfile === cmd);
    for (const c of children) c.kill('SIGCONT');
    await Promise.all(byKind('radosgw').map((c) => stopProcess(c, 'SIGTERM', 500)));
    await Promise.all(byKind('ceph-osd').map((c) => stopProcess(c, 'SIGKILL', 1000)));
    await Promise.all(byKind('ceph-mon').map((c) => stopProcess(c, 'SIGTERM', 1500)));
    await fsp.rm(this.#dir, { recursive: true, force: true });
  }
}

/** Sends `signal`, and SIGKILL if the process has not gone after `graceMs`. */
function stopProcess(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

async function waitForHttp(url: string, timeoutMs: number, diagnostics: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`radosgw did not answer at ${url} within ${timeoutMs / 1000} s\n${await diagnostics()}`);
}

function cephConf(dir: string, fsid: string, monPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monPort}]
mon initial members = a
public addr = 127.0.0.1
# Authentication off; with it off, the monitor's clients must use crc mode or
# radosgw cannot reach the monitor (get_initial_auth_request returned -13).
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
ms cluster mode = crc
ms service mode = crc
ms client mode = crc
ms bind port min = ${OSD_PORTS.min}
ms bind port max = ${OSD_PORTS.max}
# Without a short propose interval the first bucket and upload take seconds.
paxos propose interval = 0.01
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
osd crush chooseleaf type = 0
# Fault tests stop and freeze gateways of their own. With rgw's metadata cache on, every
# bucket created waits for each gateway to acknowledge a notify, and a stopped or
# frozen one holds that up for the watch timeout (30 s by default).
rgw cache enabled = false
osd client watch timeout = 5
osd objectstore = memstore
memstore device bytes = 1073741824
run dir = ${dir}/run
log file = ${dir}/log/$name.log
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
mon data = ${dir}/mon.$id
osd data = ${dir}/osd.$id
rgw data = ${dir}/rgw.$id
`;
}

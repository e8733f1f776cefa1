// Worker thread of the native encoder (see encoder.ts): runs the ffmpeg process
// and writes the frames the renderer commits to the shared ring into its stdin.
// The writes live here, not on the renderer's thread, because a frame (1.4 MB
// of yuv420p) is many pipe-fulls (64 KB): written from the drawing thread, the
// pipe is refilled only between frames, so ffmpeg and the drawing take turns
// instead of running side by side.
import { spawn } from 'node:child_process';
import { parentPort, workerData } from 'node:worker_threads';
import { CTRL, STATE, type NativeWorkerData, type NativeWorkerMessage } from './frame-ring.ts';

const data = workerData as NativeWorkerData;
const ctrl = new Int32Array(data.ctrl);

function post(m: NativeWorkerMessage): void {
  parentPort!.postMessage(m);
}

const child = spawn(data.ffmpeg, data.args, { stdio: ['pipe', 'ignore', 'pipe'] });
let stderr = '';
let failed: string | null = null;
child.stderr!.on('data', (b: Buffer) => {
  if (stderr.length < 16_384) stderr += b.toString('utf8');
});
child.stdin!.on('error', (err) => (failed ??= err.message));
const exited = new Promise<number | null>((resolve) => {
  child.once('error', (err) => {
    failed ??= err.message;
    resolve(null);
  });
  child.once('close', (code) => resolve(code));
});
if (child.pid !== undefined) post({ type: 'spawned', pid: child.pid });

/** Feeds committed frames until the renderer ends (or aborts) or ffmpeg stops taking them. */
async function feed(): Promise<void> {
  const stdin = child.stdin!;
  let gone = false;
  void exited.then(() => (gone = true));
  for (let k = 0; ; k++) {
    for (;;) {
      if (gone || failed || Atomics.load(ctrl, CTRL.state) === STATE.aborted) return;
      const written = Atomics.load(ctrl, CTRL.written);
      if (written > k) break;
      if (Atomics.load(ctrl, CTRL.state) !== STATE.running) return; // ended: all committed frames are written
      const w = Atomics.waitAsync(ctrl, CTRL.written, written, 250);
      if (w.async) await w.value;
    }
    const slot = k % data.slots;
    const frame = Buffer.from(data.ring, slot * data.frameBytes, data.frameBytes);
    const ok = await new Promise<boolean>((resolve) => stdin.write(frame, (err) => resolve(!err)));
    if (!ok) return;
    Atomics.store(ctrl, CTRL.consumed, k + 1);
    Atomics.notify(ctrl, CTRL.consumed);
  }
}

async function main(): Promise<void> {
  await feed();
  if (Atomics.load(ctrl, CTRL.state) === STATE.aborted) child.kill('SIGKILL');
  else child.stdin!.end();
  const code = await exited;
  Atomics.notify(ctrl, CTRL.consumed); // a renderer waiting for a slot looks again, and sees the end
  post({ type: 'done', code, message: failed, log: stderr });
}

main().catch((err: unknown) => {
  child.kill('SIGKILL');
  post({ type: 'done', code: null, message: err instanceof Error ? err.message : String(err), log: stderr });
});

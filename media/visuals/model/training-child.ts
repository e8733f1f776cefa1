// The child process of trainInChild (training-process.ts): trains, writes the weights file
// atomically (tmp, fsync, rename, fsync of the folder), then answers and exits.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VisualModelError } from './errors.ts';
import { trainVisualModel } from './train.ts';
import type { TrainChildMessage, TrainJob } from './training-process.ts';

function send(m: TrainChildMessage): Promise<void> {
  return new Promise((resolve, reject) => process.send!(m, undefined, undefined, (err) => (err ? reject(err) : resolve())));
}

async function writeAtomically(file: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await fsp.open(tmp, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsp.rename(tmp, file);
  const dir = await fsp.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

process.once('message', (m: { type: 'train'; job: TrainJob }) => {
  void (async () => {
    try {
      const { job } = m;
      const result = await trainVisualModel(job.images, job.config, (progress) => {
        process.send!({ type: 'progress', progress } satisfies TrainChildMessage);
      });
      await writeAtomically(job.weightsFile, result.weights);
      await send({ type: 'done', result });
    } catch (err) {
      await send({ type: 'error', message: err instanceof Error ? err.message : String(err), refused: err instanceof VisualModelError });
    }
    process.disconnect();
  })();
});
// The parent went away: nothing is left to answer to.
process.once('disconnect', () => process.exit(0));

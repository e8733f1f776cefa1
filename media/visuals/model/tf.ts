// TensorFlow.js on its WebAssembly backend, set up once per thread or process, and the two
// convolutions whose gradients the wasm backend lacks or runs slowly.
//
// Why the umbrella package: the Node bundle of tfjs-core registers no gradients, and its
// gradient registry is extensionless ESM that Node cannot load without a bundler.
// Why customGrad: tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel, its
// Conv2DBackpropInput is ~8x slower than conv2d, and conv3d (which has a filter gradient) is
// ~40x slower. Both gradients below are plain conv2d calls, which XNNPACK runs fast.
// Trap: never return a typed array from tf.tidy (it walks every element looking for
// tensors, ~1 µs each); return the tensor and read it outside.
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../../demo/artwork-random.ts';
import { version_wasm } from '@tensorflow/tfjs-backend-wasm';

export { tf };

let ready: Promise<void> | null = null;

/** Selects the wasm backend (once per thread); every entry of this module's users awaits it first. */
export function loadTf(): Promise<void> {
  ready ??= (async () => {
    const before = { exception: process.listeners('uncaughtException'), rejection: process.listeners('unhandledRejection') };
    try {
      if (!(await tf.setBackend('wasm'))) throw new Error('the TensorFlow.js WebAssembly backend did not start');
      await tf.ready();
    } finally {
      // Emscripten's Node glue inside the backend adds process-wide handlers that rethrow every
      // uncaught exception and unhandled rejection: they would change how the whole process (a
      // test runner, a bench, a server thread) fails for reasons that have nothing to do with tfjs.
      for (const l of process.listeners('uncaughtException')) if (!before.exception.includes(l)) process.off('uncaughtException', l);
      for (const l of process.listeners('unhandledRejection')) if (!before.rejection.includes(l)) process.off('unhandledRejection', l);
    }
    tf.env().set('DEBUG', false);
  })();
  return ready;
}

/** What ran a training, for its record. */
export async function tfSoftware(): Promise<Record<string, string | boolean>> {
  await loadTf();
  return {
    tfjs: tf.version.tfjs,
    backend: `${tf.getBackend()} ${version_wasm}`,
    simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')),
    threads: Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
  };
}

/** conv2d 'same', stride 1, odd square kernel, optional dilation; both gradients are conv2d. */
export function conv2dSame(x: tf.Tensor4D, w: tf.Tensor4D, dilation = 1): tf.Tensor4D {
  return dilation === 1 ? convSame1(x, w) : convSameDilated(dilation)(x, w);
}

const convSame1 = makeConvSame(1);
const dilatedCache = new Map<number, (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D>();
function convSameDilated(d: number): (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D {
  let f = dilatedCache.get(d);
  if (!f) dilatedCache.set(d, (f = makeConvSame(d)));
  return f;
}

function makeConvSame(d: number): (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D {
  const f = tf.customGrad((...args: unknown[]) => {
    const [x, w, save] = args as [tf.Tensor4D, tf.Tensor4D, (ts: tf.Tensor[]) => void];
    save([x, w]);
    return {
      value: tf.conv2d(x, w, 1, 'same', 'NHWC', d),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const k = ws.shape[0];
        const p = ((k - 1) >> 1) * d;
        // dx: correlation of dy with the flipped filter, in and out channels swapped.
        const dx = tf.conv2d(dy as tf.Tensor4D, tf.transpose(tf.reverse(ws, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D, 1, 'same', 'NHWC', d);
        // dw[i,j,c,o] = Σ_{b,y,x} xpad[b, y+i·d, x+j·d, c]·dy[b,y,x,o]: a 'valid' conv with batch and
        // channels swapped, its output taken every d pixels (a stride).
        const xt = tf.transpose(tf.pad(xs, [[0, 0], [p, p], [p, p], [0, 0]]), [3, 1, 2, 0]) as tf.Tensor4D; // [ci, H+2p, W+2p, B]
        const fy = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [H, W, B, co]
        const dw = tf.transpose(tf.conv2d(xt, fy, d, 'valid'), [1, 2, 0, 3]); // [k, k, ci, co]
        return [dx, dw];
      },
    };
  });
  return (x, w) => f(x, w) as tf.Tensor4D;
}

/**
 * conv2d with reflect padding (no zero border, so the net gets no position from the edges: zero
 * padding drew bands along the edges of generated textures). The 'valid' conv's gradients are
 * conv2d; mirrorPad's gradient is tfjs's own.
 */
export function conv2dReflect(x: tf.Tensor4D, w: tf.Tensor4D, dilation = 1, train = true): tf.Tensor4D {
  const p = ((w.shape[0] - 1) >> 1) * dilation;
  const xp = p > 0 ? tf.mirrorPad(x, [[0, 0], [p, p], [p, p], [0, 0]], 'reflect') : x;
  if (!train) return tf.conv2d(xp, w, 1, 'valid', 'NHWC', dilation);
  let f = validCache.get(dilation);
  if (!f) validCache.set(dilation, (f = makeConvValid(dilation)));
  return f(xp, w);
}

const validCache = new Map<number, (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D>();
function makeConvValid(d: number): (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D {
  const f = tf.customGrad((...args: unknown[]) => {
    const [x, w, save] = args as [tf.Tensor4D, tf.Tensor4D, (ts: tf.Tensor[]) => void];
    save([x, w]);
    return {
      value: tf.conv2d(x, w, 1, 'valid', 'NHWC', d),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const e = (ws.shape[0] - 1) * d; // the kernel's extent minus one
        const dyp = (e > 0 ? tf.pad(dy, [[0, 0], [e, e], [e, e], [0, 0]]) : dy) as tf.Tensor4D;
        const dx = tf.conv2d(dyp, tf.transpose(tf.reverse(ws, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D, 1, 'valid', 'NHWC', d);
        const xt = tf.transpose(xs, [3, 1, 2, 0]) as tf.Tensor4D; // [ci, H, W, B]
        const fy = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [H-e, W-e, B, co]
        const dw = tf.transpose(tf.conv2d(xt, fy, d, 'valid'), [1, 2, 0, 3]);
        return [dx, dw];
      },
    };
  });
  return (x, w) => f(x, w) as tf.Tensor4D;
}

/** 'valid' conv with a constant filter (the SW projections): only dx, as a conv2d of the padded dy. */
const projectValidGrad = tf.customGrad((...args: unknown[]) => {
  const [x, w, save] = args as [tf.Tensor4D, tf.Tensor4D, (ts: tf.Tensor[]) => void];
  save([w]);
  return {
    value: tf.conv2d(x, w, 1, 'valid'),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const ws = saved[0] as tf.Tensor4D;
      const k = ws.shape[0];
      const dyp = (k > 1 ? tf.pad(dy, [[0, 0], [k - 1, k - 1], [k - 1, k - 1], [0, 0]]) : dy) as tf.Tensor4D;
      return [tf.conv2d(dyp, tf.transpose(tf.reverse(ws, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D, 1, 'valid'), tf.zerosLike(ws)];
    },
  };
});

export function projectValid(x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  return projectValidGrad(x, w) as tf.Tensor4D;
}

/** Mulberry32 (the demo artwork's): weights init and noise without tfjs's seeding (same numbers in any thread). */
export { mulberry32 };

/** n normal samples (Box–Muller) times `scale`. */
export function gaussian(rand: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rand(), 1e-12);
    const v = rand();
    const m = Math.sqrt(-2 * Math.log(u)) * scale;
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

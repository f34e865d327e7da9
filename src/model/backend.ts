/**
 * The TensorFlow.js backend for training: the native one (`@tensorflow/tfjs-node`, an optional
 * dependency) where it installed, else WebAssembly (`@tensorflow/tfjs-backend-wasm`, XNNPACK, SIMD),
 * else the plain JavaScript cpu backend. Measured on the 2-core CI machine (bench/train): wasm is
 * 6-25x faster than cpu for the training step; tfjs-node cannot install there (its install script
 * downloads libtensorflow from a host that machine cannot reach).
 *
 * Chosen once per process (tfjs keeps one global engine); `STREAMREC_TF_BACKEND` or `prefer`
 * forces one ('tensorflow' | 'wasm' | 'cpu').
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export const BACKENDS: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

let chosen: Promise<BackendName> | undefined;
/** Set once `initBackend` has finished. */
let initialised = false;

async function tryNative(): Promise<boolean> {
  try {
    // Optional dependency: present only where its native library installed.
    createRequire(import.meta.url)('@tensorflow/tfjs-node');
    return await tf.setBackend('tensorflow');
  } catch {
    return false;
  }
}

async function choose(prefer?: BackendName): Promise<BackendName> {
  const order: BackendName[] = prefer ? [prefer, ...BACKENDS.filter((b) => b !== prefer)] : [...BACKENDS];
  for (const name of order) {
    const ok = name === 'tensorflow' ? await tryNative() : await tf.setBackend(name).catch(() => false);
    if (ok) {
      await tf.ready();
      return name;
    }
  }
  throw new Error('no TensorFlow.js backend could start (tried tensorflow, wasm, cpu)');
}

/** Initialises the backend (once) and returns its name. */
export function initBackend(prefer?: BackendName): Promise<BackendName> {
  const env = process.env.STREAMREC_TF_BACKEND as BackendName | undefined;
  const want = prefer ?? (env && BACKENDS.includes(env) ? env : undefined);
  chosen ??= choose(want).then((name) => {
    initialised = true;
    return name;
  });
  return chosen;
}

/**
 * Whether a compiled backend (native or wasm) is up now, for synchronous code that can use one but
 * must not start one (starting is asynchronous): false before `initBackend` has finished.
 */
export function compiledBackendUp(): boolean {
  if (!initialised) return false;
  const name = tf.getBackend();
  return name === 'wasm' || name === 'tensorflow';
}

/**
 * Switches the already-initialised engine to another backend (tests compare wasm with cpu).
 * Returns false when that backend is not available.
 */
export async function useBackend(name: BackendName): Promise<boolean> {
  await initBackend();
  if (tf.getBackend() === name) return true;
  const ok = name === 'tensorflow' ? await tryNative() : await tf.setBackend(name).catch(() => false);
  if (ok) await tf.ready();
  return ok;
}

export { tf };

// Worker-thread side of delta encoding (run by the pool in protocol/delta-encoder.ts): the CPU-heavy steps,
// super-features and zstd with a dictionary, off the main thread and on every core.
import { compressChunk } from './encoding/compression.js'
import { encodeDelta, superFeatures } from './delta.js'

export type DeltaTask =
  | { op: 'features', data: Uint8Array }
  | { op: 'delta', targets: Uint8Array[], bases: Uint8Array[], level: number }
  | { op: 'compress', data: Uint8Array }

export interface DeltaTaskResult {
  features?: Uint32Array
  /** the delta object */
  object?: Uint8Array
  /** op 'compress': the chunk's size as compressed transfer would send it */
  compressedSize?: number
  /** op 'delta': each target's size as compressed transfer would send it */
  compressedSizes?: number[]
  /** op 'compress': the zstd frame, when compression saves enough to keep it */
  frame?: Uint8Array
}

export default function run (task: DeltaTask): DeltaTaskResult {
  if (task.op === 'features') return { features: superFeatures(task.data) }
  if (task.op === 'compress') {
    const frame = compressChunk(task.data)
    return { compressedSize: frame?.byteLength ?? task.data.byteLength, frame }
  }
  const object = encodeDelta(task.targets, task.bases, task.level)
  const compressedSizes = task.targets.map(t => compressChunk(t)?.byteLength ?? t.byteLength)
  return { object, compressedSizes }
}

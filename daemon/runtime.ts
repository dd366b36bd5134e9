// The V8 heap settings heraldd runs with. Moving a release allocates several times its size in short-lived
// Buffers (frames, decompressed chunks, hashes); with V8's default young generation (16 MiB semi-spaces) and a
// small initial old generation, that churn promotes garbage and triggers a full mark-compact every few
// megabytes moved: on release day with 8 daemons on 2 cores, about a fifth of all CPU went to garbage
// collection. A larger young generation and a larger initial old generation cut full collections from ~45 to
// ~3 per daemon and total CPU by 25–30% (docs/BENCHMARKS.md). The flags are read when V8 creates its heap, so
// they cannot be set from inside the process: the `heraldd` executable (which the image runs) passes them on
// its #! line, and the systemd unit and the test harness pass them explicitly.
export const HEAP_FLAGS: readonly string[] = ['--max-semi-space-size=32', '--initial-old-space-size=512']

/** The recommended heap flags this process was started without (a flag given with another value counts as set). */
export function missingHeapFlags (execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map(a => a.split('=')[0].replace(/_/g, '-'))
  return HEAP_FLAGS.filter(f => !given.includes(f.split('=')[0]))
}

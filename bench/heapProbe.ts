/**
 * Preloaded into a Node proxy under benchmark (`node --import dist/bench/heapProbe.js …`): counts
 * the bytes the V8 heap allocates over a window the harness marks with two SIGUSR2 signals.
 *
 * First SIGUSR2: start a `v8.GCProfiler` and note the heap's used size. Second SIGUSR2: stop it and
 * write `{ allocatedBytes, gcs, scavenges, markSweeps, gcMs }` as JSON to the file named by
 * `FULCRUM_BENCH_HEAP_OUT`. Allocated = net growth of the used heap over the window + what every GC
 * in it freed (used before minus used after). It counts JS objects, strings and Buffer *handles* on
 * the V8 heap; the backing stores of Buffers (off-heap, malloc'd or pooled) are not in it.
 *
 * With `FULCRUM_BENCH_HEAP_SAMPLE` naming a file, the same window also runs V8's sampling heap
 * profiler, keeping the samples of objects the GC has since collected (so it shows where the
 * per-request garbage is allocated, not only what stays), written there as a `.heapprofile`
 * (Chrome DevTools → Memory, or speedscope).
 */
import fs from 'node:fs';
import { Session } from 'node:inspector';
import v8 from 'node:v8';

const out = process.env.FULCRUM_BENCH_HEAP_OUT;
const sampleOut = process.env.FULCRUM_BENCH_HEAP_SAMPLE;
let session: Session | undefined;

if (out) {
  let profiler: v8.GCProfiler | undefined;
  let usedAtStart = 0;
  process.on('SIGUSR2', () => {
    if (!profiler) {
      profiler = new v8.GCProfiler();
      usedAtStart = v8.getHeapStatistics().used_heap_size;
      profiler.start();
      if (sampleOut) {
        session = new Session();
        session.connect();
        session.post('HeapProfiler.startSampling', {
          samplingInterval: 1024,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        } as object);
      }
      return;
    }
    if (session && sampleOut) {
      const s = session;
      session = undefined;
      s.post('HeapProfiler.stopSampling', (err, res) => {
        if (!err) fs.writeFileSync(sampleOut, JSON.stringify(res.profile));
        s.disconnect();
      });
    }
    const result = profiler.stop();
    profiler = undefined;
    const usedAtEnd = v8.getHeapStatistics().used_heap_size;
    let freed = 0;
    let scavenges = 0;
    let markSweeps = 0;
    let gcUs = 0;
    for (const s of result?.statistics ?? []) {
      freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
      gcUs += s.cost;
      if (s.gcType === 'Scavenge' || s.gcType === 'MinorMarkSweep') scavenges++;
      else markSweeps++;
    }
    const doc = {
      allocatedBytes: usedAtEnd - usedAtStart + freed,
      gcs: result?.statistics.length ?? 0,
      scavenges,
      markSweeps,
      gcMs: gcUs / 1000,
    };
    fs.writeFileSync(out, JSON.stringify(doc));
  });
}

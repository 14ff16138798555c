export interface LatencySummary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  /** Completed operations per second over the measurement's wall time. */
  throughput: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

import type { FastifyInstance } from 'fastify';
import { Gauge, Histogram, Registry } from 'prom-client';
import type { SqlExecutor } from '../core/ports.ts';

// Prometheus metrics at GET /metrics (text exposition format, checked with `promtool check metrics` in
// the tests). Request latency is measured here; the state gauges are read from the database at scrape
// time, so every API instance reports the same totals. No label carries an id or anything from a case.

export function registerMetrics(app: FastifyInstance, deps: { db: SqlExecutor }): Registry {
  const registry = new Registry();
  // prom-client's default process metrics name gauges *_total, which promtool rejects; the two that
  // matter are given here under conventional names.
  new Gauge({
    name: 'dxflow_process_resident_memory_bytes',
    help: 'Resident memory of this process',
    registers: [registry],
    collect() { this.set(process.memoryUsage().rss); },
  });
  new Gauge({
    name: 'dxflow_process_uptime_seconds',
    help: 'Time since this process started',
    registers: [registry],
    collect() { this.set(process.uptime()); },
  });
  const latency = new Histogram({
    name: 'dxflow_http_request_duration_seconds',
    help: 'HTTP request latency by route (the pattern, not the path), method and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  new Gauge({
    name: 'dxflow_cases',
    help: 'Cases by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const rows = await deps.db.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM dxflow_case GROUP BY status');
      for (const status of ['queued', 'running', 'succeeded', 'failed']) this.set({ status }, rows.find((r) => r.status === status)?.n ?? 0);
    },
  });
  new Gauge({
    name: 'dxflow_case_queue_oldest_age_seconds',
    help: 'Age of the oldest queued case (0 when none is waiting)',
    registers: [registry],
    async collect() {
      const [row] = await deps.db.query<{ age: number | null }>(`SELECT extract(epoch FROM now() - min(created_at))::float8 AS age FROM dxflow_case WHERE status = 'queued'`);
      this.set(row?.age ?? 0);
    },
  });
  new Gauge({
    name: 'dxflow_slide_tiles_scored',
    help: 'Whole-slide tiles scored, over all stored cases',
    registers: [registry],
    async collect() {
      const [row] = await deps.db.query<{ n: number | null }>('SELECT sum(tiles_done)::float8 AS n FROM dxflow_tile_plan');
      this.set(row?.n ?? 0);
    },
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    latency.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  return registry;
}

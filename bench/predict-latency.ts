// Benchmark: POST /v1/predict latency (p50/p95/p99) at concurrency 1 and 8, against a bare
// onnxruntime `session.run` loop on the same model, measured in the same process and run.
// The ratio says what the platform costs on top of inference: upload parsing, validation, decode,
// preprocessing, persistence of the case, checkpoints and findings.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { build } from '../src/api/app.ts';
import { loadConfig } from '../src/core/config.ts';
import { readManifest, readVerifiedArtifact, requireKind } from '../src/models/manifest.ts';
import { decodeInput } from '../src/pipeline/stages/decode-input.ts';
import { toInputTensor } from '../src/models/preprocess.ts';
import { openPlatform } from '../src/platform.ts';
import { percentile, type LatencySummary } from './stats.ts';

const SAMPLE = 'samples/tissue-tumour-like.png';
const MODEL = 'demo-tissue-classifier';

async function measure(concurrency: number, total: number, once: () => Promise<void>): Promise<LatencySummary> {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      next++;
      const s = performance.now();
      await once();
      latencies.push(performance.now() - s);
    }
  }));
  const wall = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  return { n: latencies.length, p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), throughput: (latencies.length / wall) * 1000 };
}

const NOTE = 'samples/note-intermediate-risk.txt';
const KEY = 'bench-key-0123456789abcdef';

/** An embedded dxflow on a free loopback port, in a throw-away data folder. */
async function startServer() {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dxflow-bench-'));
  const config = loadConfig({ DXFLOW_DATA_DIR: dataDir, DXFLOW_LOG_LEVEL: 'silent', DXFLOW_API_KEY: KEY, DXFLOW_LIMITS_REQUESTS_PER_MINUTE: '1000000' });
  const platform = await openPlatform(config);
  const app = await build(platform);
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    config, platform, address,
    async stop() {
      await app.close();
      await platform.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** POST /v1/predict with the two-model image-treatment pipeline (image + note), at concurrency 1 and 8. */
export async function treatmentLatency(options: { requests: number }): Promise<Record<string, LatencySummary>> {
  const server = await startServer();
  const { address } = server;
  const image = await readFile(SAMPLE);
  const note = await readFile(NOTE, 'utf8');
  const predict = async () => {
    const form = new FormData();
    form.append('image', new Blob([image], { type: 'application/octet-stream' }), 'sample.png');
    form.append('note', note);
    form.append('pipeline', 'image-treatment');
    const res = await fetch(`${address}/v1/predict`, { method: 'POST', body: form, headers: { authorization: `Bearer ${KEY}` } });
    if (res.status !== 200) throw new Error(`predict returned ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { recommendation: { status: string } | null };
    if (body.recommendation?.status !== 'recommended') throw new Error('the benchmark case must produce a recommendation');
  };
  const results: Record<string, LatencySummary> = {};
  try {
    await measure(1, 20, predict);
    for (const c of [1, 8]) results[`POST /v1/predict image-treatment c=${c}`] = await measure(c, options.requests, predict);
  } finally {
    await server.stop();
  }
  return results;
}

export async function predictLatency(options: { requests: number }): Promise<Record<string, LatencySummary>> {
  const server = await startServer();
  const { config, platform, address } = server;
  const image = await readFile(SAMPLE);

  // The same model, straight through onnxruntime with a ready tensor: the floor for any server.
  const loaded = requireKind(await readManifest(config.modelsDir, MODEL), 'onnx');
  const session = await ort.InferenceSession.create(await readVerifiedArtifact(loaded), { intraOpNumThreads: config.onnx.intraOpThreads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  const rgb = await decodeInput(image, config.limits);
  const { data, dims } = await toInputTensor(rgb, loaded.manifest.inputs.preprocess);
  const feeds = { [loaded.manifest.inputs.name]: new ort.Tensor('float32', data, dims) };
  const bare = async () => { await session.run(feeds, [loaded.manifest.outputs.name]); };

  const predict = async () => {
    const form = new FormData();
    form.append('image', new Blob([image], { type: 'application/octet-stream' }), 'sample.png');
    const res = await fetch(`${address}/v1/predict`, { method: 'POST', body: form, headers: { authorization: `Bearer ${KEY}` } });
    if (res.status !== 200) throw new Error(`predict returned ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  };

  const results: Record<string, LatencySummary> = {};
  try {
    await measure(1, 20, predict); // warm-up: model load, JIT, connection pool
    await measure(1, 50, bare);
    // Where the time goes, one component at a time (concurrency 1).
    let k = 0;
    results['component: decode 512² PNG (inspect + full decode)'] = await measure(1, options.requests, async () => { await decodeInput(Buffer.from(image), config.limits); });
    results['component: store input object (write + fsync + rename)'] = await measure(1, options.requests, async () => { await platform.objects.put(`bench/${k++}`, image); });
    for (const c of [1, 8]) {
      results[`session.run c=${c}`] = await measure(c, options.requests, bare);
      results[`POST /v1/predict c=${c}`] = await measure(c, options.requests, predict);
    }
  } finally {
    await session.release();
    await server.stop();
  }
  return results;
}

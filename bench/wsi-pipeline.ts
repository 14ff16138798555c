// Whole-slide pipeline benchmark (issue: whole-slide images at scale):
//  1. overhead — end-to-end slide time of `dxflow analyze` (intake, tissue detection and tile planning,
//     tile-batch jobs through pg-boss on embedded PGlite, reading tiles from the stored slide by range,
//     packing, inference, idempotent score writes, pooling, heatmap, the rest of the pipeline) against
//     the time of the model alone (session.run only) on exactly the same tiles and batches;
//  2. memory — peak RSS of `dxflow analyze` on a multi-gigabyte BigTIFF, sampled from /proc.
// Both run the real CLI in a child process, as a user would.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../src/models/manifest.ts';
import { packBatch } from '../src/models/preprocess.ts';
import { openFileSource } from '../src/imaging/wsi/byte-source.ts';
import { openSlide } from '../src/imaging/wsi/slide.ts';
import { planTileGrid, readGridTiles, tileSettings } from '../src/pipeline/tiles.ts';
import type { OnnxManifest } from '../src/core/manifest.ts';
import { writeBigSlide, type BigSlide } from './big-slide.ts';

const PYTHON = '/usr/bin/python3';
const BATCH = 64;

interface RunResult { caseSeconds: number; wallSeconds: number; peakRssMiB: number; tiles: number; status: string }

/** Runs `dxflow analyze` and samples its peak RSS (VmHWM) until it exits. */
function analyze(slide: string, pipeline: string, env: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['src/cli/main.ts', 'analyze', slide, '--pipeline', pipeline], {
      env: { ...process.env, DXFLOW_LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let peakKiB = 0;
    const sample = setInterval(() => {
      readFile(`/proc/${child.pid}/status`, 'utf8').then((s) => {
        const m = /VmHWM:\s+(\d+) kB/.exec(s);
        if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
      }, () => undefined);
    }, 100);
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sample);
      if (code !== 0) return reject(new Error(`dxflow analyze exited with ${code}: ${stderr.slice(-2000)}`));
      const r = JSON.parse(stdout) as { status: string; createdAt: string; completedAt: string; progress: Array<{ tilesTotal: number }> };
      resolve({
        caseSeconds: (Date.parse(r.completedAt) - Date.parse(r.createdAt)) / 1000,
        wallSeconds: (performance.now() - t0) / 1000,
        peakRssMiB: peakKiB / 1024,
        tiles: r.progress[0]?.tilesTotal ?? 0,
        status: r.status,
      });
    });
  });
}

/**
 * The model alone: the same tiles in the same batches, only session.run timed, one thread per run as the
 * workers have; with `streams` 2, two batches at a time on the two cores, as two tile workers run them.
 */
async function modelAlone(slidePath: string, modelsDir: string, name: string, streams: number): Promise<{ seconds: number; tiles: number }> {
  const loaded = await readManifest(modelsDir, name);
  const modelDir = path.join(modelsDir, name);
  const manifest = loaded.manifest as OnnxManifest;
  const settings = tileSettings(manifest);
  const session = await ort.InferenceSession.create(path.join(modelDir, manifest.artifact), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  const source = await openFileSource(slidePath);
  try {
    const slide = await openSlide(source);
    const { grid, coords } = await planTileGrid(slide, settings);
    let seconds = 0;
    for (let i = 0; i < coords.length; i += 2 * BATCH * streams) {
      const inputs = [];
      for (let s = 0; s < streams && i + 2 * BATCH * s < coords.length; s++) {
        const at = i + 2 * BATCH * s;
        const { data, dims } = await packBatch(await readGridTiles(slide, grid, coords.subarray(at, at + 2 * BATCH)), manifest.inputs.preprocess);
        inputs.push({ [manifest.inputs.name]: new ort.Tensor('float32', data, dims) });
      }
      const t0 = performance.now();
      await Promise.all(inputs.map((feeds) => session.run(feeds, [manifest.outputs.name])));
      seconds += (performance.now() - t0) / 1000;
    }
    return { seconds, tiles: coords.length / 2 };
  } finally {
    await source.close();
    await session.release();
  }
}

export interface WsiPipelineResult {
  overhead: Array<{ model: string; workers: number; tiles: number; caseSeconds: number; modelSeconds: number; ratio: number }>;
  slide: { width: number; height: number };
  big: BigSlide & { run: RunResult; tilesPerSecond: number };
}

export async function measureWsiPipeline(): Promise<WsiPipelineResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-bench-wsi-pipeline-'));
  try {
    // Models: the demo tile model, and a ResNet-18 with the inference cost of a real tile model.
    const modelsDir = path.join(dir, 'models');
    await mkdir(modelsDir);
    await cp('models/demo-tissue-classifier', path.join(modelsDir, 'demo-tissue-classifier'), { recursive: true });
    await cp('models/demo-treatment-recommender', path.join(modelsDir, 'demo-treatment-recommender'), { recursive: true });
    const made = spawn(PYTHON, ['bench/models/tile_resnet18.py', path.join(modelsDir, 'bench-resnet18')], { stdio: 'ignore' });
    if ((await new Promise<number | null>((r) => made.on('close', r))) !== 0) throw new Error('bench/models/tile_resnet18.py failed (needs python3-torch)');
    const pipelinesDir = path.join(dir, 'pipelines');
    await mkdir(pipelinesDir);
    for (const model of ['demo-tissue-classifier', 'bench-resnet18']) {
      await writeFile(path.join(pipelinesDir, `tiles-${model}.yaml`), [
        `name: tiles-${model}`, 'version: 1', 'accepts: [slide]', 'stages:',
        '  - id: tiles', '    uses: slide.tiles', `    with: { model: ${model}, batchSize: ${BATCH} }`, '',
      ].join('\n'));
    }
    await cp('pipelines/wsi-prognosis.yaml', path.join(pipelinesDir, 'wsi-prognosis.yaml'));
    const env = (name: string) => ({
      DXFLOW_DATA_DIR: path.join(dir, `data-${name}`), DXFLOW_MODELS_DIR: modelsDir, DXFLOW_PIPELINES_DIR: pipelinesDir,
      DXFLOW_ONNX_INTRA_OP_THREADS: '1', DXFLOW_WORKER_TILE_CONCURRENCY: '1',
    });

    // 1. Overhead, on a slide of a few thousand grid cells.
    const width = Number(process.env['BENCH_WSI_WIDTH'] ?? 24_000);
    const height = Number(process.env['BENCH_WSI_HEIGHT'] ?? 18_000);
    const slidePath = path.join(dir, 'overhead.tif');
    process.stderr.write(`wsi pipeline: writing a ${width}×${height} slide…\n`);
    await writeBigSlide(slidePath, width, height);
    const overhead: WsiPipelineResult['overhead'] = [];
    for (const model of ['bench-resnet18', 'demo-tissue-classifier']) {
      for (const workers of [1, 2]) {
        process.stderr.write(`wsi pipeline: ${model}, model alone with ${workers} stream(s)…\n`);
        const alone = await modelAlone(slidePath, modelsDir, model, workers);
        process.stderr.write(`wsi pipeline: ${model}, dxflow analyze with ${workers} tile worker(s)…\n`);
        const run = await analyze(slidePath, `tiles-${model}`, { ...env(`${model}-${workers}`), DXFLOW_WORKER_TILE_CONCURRENCY: String(workers) });
        if (run.status !== 'succeeded' || run.tiles !== alone.tiles) throw new Error(`${model}: ${run.status}, ${run.tiles} tiles vs ${alone.tiles}`);
        overhead.push({ model, workers, tiles: run.tiles, caseSeconds: run.caseSeconds, modelSeconds: alone.seconds, ratio: run.caseSeconds / alone.seconds });
      }
    }

    // 2. Peak RSS on a multi-gigabyte BigTIFF, the full wsi-prognosis pipeline (two tile workers).
    const bigWidth = Number(process.env['BENCH_WSI_BIG_WIDTH'] ?? 200_000);
    const bigHeight = Number(process.env['BENCH_WSI_BIG_HEIGHT'] ?? 150_000);
    process.stderr.write(`wsi pipeline: writing a ${bigWidth}×${bigHeight} BigTIFF…\n`);
    const big = await writeBigSlide(path.join(dir, 'big.tif'), bigWidth, bigHeight);
    process.stderr.write(`wsi pipeline: ${(big.bytes / 2 ** 30).toFixed(2)} GiB; dxflow analyze…\n`);
    const bigRun = await analyze(big.path, 'wsi-prognosis', { ...env('big'), DXFLOW_WORKER_TILE_CONCURRENCY: '2' });
    if (bigRun.status !== 'succeeded') throw new Error(`the big slide ended ${bigRun.status}`);
    return { overhead, slide: { width, height }, big: { ...big, run: bigRun, tilesPerSecond: bigRun.tiles / bigRun.caseSeconds } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatWsiPipelineBenchmark(r: WsiPipelineResult): string {
  const gib = (b: number) => (b / 2 ** 30).toFixed(2);
  return `## Whole slide end to end: pipeline overhead and memory

\`dxflow analyze SLIDE --pipeline …\` in a child process (embedded PGlite, pg-boss tile-batch jobs of ${BATCH}
tiles, one ONNX thread per inference, one tile worker or two — the default), timed from the case's creation to its completion: tissue
detection and planning, every batch job (reading its tiles from the stored slide by byte range, JPEG
decode, packing, inference, the idempotent score write and counter), pooling and the heatmap. The peer is
the model alone: \`session.run\` on exactly the same tiles in the same batches of ${BATCH}, nothing else timed —
one batch at a time against one tile worker, two at once (one per core) against two.
Slide: ${r.slide.width}×${r.slide.height} pyramidal JPEG BigTIFF at 0.25 µm/px (\`bench/big-slide.ts\`).

| tile model | tiles | tile workers | dxflow s | model alone s | overhead ratio |
|---|---|---|---|---|---|
${r.overhead.map((o) => `| ${o.model} | ${o.tiles} | ${o.workers} | ${o.caseSeconds.toFixed(2)} | ${o.modelSeconds.toFixed(2)} | ${o.ratio.toFixed(2)}× |`).join('\n')}

\`bench-resnet18\` is a ResNet-18 at 224 px and 0.5 µm/px with random weights (\`bench/models/tile_resnet18.py\`),
the inference cost of a typical tile model; its ratio is the platform's overhead where it matters (goal
≤ 1.15): what the platform adds per tile is reading its 448-px level-0 region (JPEG decode of the
slide tiles it crosses), the 2× block-mean reduction to 224 and packing, and per batch a job fetch and one
transaction. The demo model is tiny (≈0.15 ms per 96-px tile), so with it the time is mostly reading and
decoding tiles — the ratio then measures tile extraction, not inference.

Peak memory on a multi-gigabyte slide: ${r.big.width}×${r.big.height} pixels, ${gib(r.big.bytes)} GiB BigTIFF, the full
\`wsi-prognosis\` pipeline with two tile workers: ${r.big.run.tiles} tissue tiles in ${r.big.run.caseSeconds.toFixed(1)} s
(${r.big.tilesPerSecond.toFixed(0)} tiles/s), **peak RSS ${r.big.run.peakRssMiB.toFixed(0)} MiB** (goal: under 1.5 GiB, independent
of the slide's size — the slide is streamed into the store and read by range, never whole).

Reproduce: \`npx node bench/wsi-pipeline.ts\` (slide sizes: \`BENCH_WSI_WIDTH\`, \`BENCH_WSI_HEIGHT\`,
\`BENCH_WSI_BIG_WIDTH\`, \`BENCH_WSI_BIG_HEIGHT\`).
`;
}

export async function runWsiPipelineBenchmark(): Promise<string> {
  return formatWsiPipelineBenchmark(await measureWsiPipeline());
}

if (import.meta.main) process.stdout.write(`${await runWsiPipelineBenchmark()}\n`);

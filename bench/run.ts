// npm run bench — runs the benchmarks and rewrites BENCHMARKS.md with the results and ratios.
import { cpus } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { predictLatency, treatmentLatency } from './predict-latency.ts';
import { runXgboostBenchmark } from './xgboost.ts';
import { runWsiTileBenchmark } from './wsi-tiles.ts';
import { runWsiPipelineBenchmark } from './wsi-pipeline.ts';
import type { LatencySummary } from './stats.ts';

const requests = Number(process.env['BENCH_REQUESTS'] ?? 400);
process.stderr.write(`predict latency: ${requests} requests per setting…\n`);
const r = await predictLatency({ requests });
process.stderr.write('image-treatment latency…\n');
const treatment = await treatmentLatency({ requests: Math.min(requests, 200) });
process.stderr.write('XGBoost engine against python3-xgboost…\n');
const xgboostSection = await runXgboostBenchmark();
process.stderr.write('tile extraction against OpenSlide and libvips…\n');
const wsiTileSection = await runWsiTileBenchmark();
process.stderr.write('whole slide end to end against the model alone; peak memory on a multi-gigabyte slide…\n');
const wsiPipelineSection = await runWsiPipelineBenchmark();

const ms = (v: number) => v.toFixed(2);
const row = (name: string, s: LatencySummary) => `| ${name} | ${s.n} | ${ms(s.p50)} | ${ms(s.p95)} | ${ms(s.p99)} | ${s.throughput.toFixed(1)} |`;
const get = (k: string) => { const v = r[k]; if (!v) throw new Error(`missing result ${k}`); return v; };
const ratio = (c: number, p: 'p50' | 'p95' | 'p99') => (get(`POST /v1/predict c=${c}`)[p] / get(`session.run c=${c}`)[p]).toFixed(1);

const md = `# Benchmarks

Measured with \`npm run bench\` (\`BENCH_REQUESTS=${requests}\`) on ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'},
Node ${process.version}, ${new Date().toISOString().slice(0, 10)}. Everything runs in one process on this machine;
numbers from another machine are not comparable, ratios roughly are.

## POST /v1/predict against a bare \`session.run\`

The peer is onnxruntime-node's \`InferenceSession.run\` on the same demo model with a ready input
tensor — the floor any server could reach. \`POST /v1/predict\` adds the HTTP round trip on loopback,
multipart parsing, type and limit checks, a full decode, preprocessing, storing the input object and
the case, one checkpoint per stage and the findings (embedded PGlite), and reading the result back.

| setting | requests | p50 ms | p95 ms | p99 ms | per second |
|---|---|---|---|---|---|
${Object.entries(r).map(([k, v]) => row(k, v)).join('\n')}

| ratio predict / session.run | p50 | p95 | p99 |
|---|---|---|---|
| concurrency 1 | ${ratio(1, 'p50')}× | ${ratio(1, 'p95')}× | ${ratio(1, 'p99')}× |
| concurrency 8 | ${ratio(8, 'p50')}× | ${ratio(8, 'p95')}× | ${ratio(8, 'p99')}× |

The component rows show where a request's time goes: decoding the 512×512 PNG is the largest single
part, and its tail (libvips sharing two cores with everything else) widens the predict p95; writing the
input durably (fsync, then rename) costs a couple of milliseconds. The rest is multipart parsing, the
case row, one checkpoint per stage and the findings on the embedded database — one connection, so
concurrent requests queue there (the c=8 rows). Inference of this small demo model takes a fraction of
a millisecond, which is why the ratio is large; next to an EfficientNet-class model (≈13 ms per image on
one core here) the same ~20 ms of platform work would be about 2.5× a bare inference.

## POST /v1/predict with the two-model pipeline (image + note)

\`image-treatment\`: validate, quality screen, image classifier with a CAM heatmap rendered and stored,
note parsing, XGBoost recommender with exact TreeSHAP and the abstention policy, the LLM step (offline
rules, as with no endpoint configured), billing suggestions; every stage checkpointed.

| setting | requests | p50 ms | p95 ms | p99 ms | per second |
|---|---|---|---|---|---|
${Object.entries(treatment).map(([k, v]) => row(k, v)).join('\n')}

Target: p95 well under 500 ms at concurrency 8.

${xgboostSection}
${wsiTileSection}
${wsiPipelineSection}
Reproduce: \`npm run bench\` (the XGBoost part alone: \`npx node bench/xgboost.ts\`; tile extraction alone:
\`npx node bench/wsi-tiles.ts\`; the whole-slide pipeline alone: \`npx node bench/wsi-pipeline.ts\`).
`;
await writeFile('BENCHMARKS.md', md);
process.stdout.write(md);

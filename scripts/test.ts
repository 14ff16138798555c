// Runs every test file under test/ with node:test, prints the spec report, and ends with one line
// "N passed, N failed" (the line CI reads). PostgreSQL tests run too when DXFLOW_TEST_DATABASE_URL is set.
import { glob } from 'node:fs/promises';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import path from 'node:path';

const filters = process.argv.slice(2);
const files: string[] = [];
for await (const f of glob('test/**/*.test.ts')) {
  if (filters.length === 0 || filters.some((x) => f.includes(x))) files.push(path.resolve(f));
}
files.sort();
if (files.length === 0) {
  process.stdout.write('no test files matched\n0 passed, 1 failed\n');
  process.exit(1);
}

let passed = 0;
let failed = 0;
let skipped = 0;
const stream = run({ files, concurrency: Number(process.env['DXFLOW_TEST_CONCURRENCY'] ?? 2), timeout: 10 * 60_000 });
stream.on('test:pass', (t) => {
  if (t.details.type === 'suite') return;
  if (t.skip || t.todo) skipped++;
  else passed++;
});
stream.on('test:fail', (t) => {
  if (t.details.type === 'suite' && passed + failed > 0) return;
  failed++;
});
stream.compose(spec).pipe(process.stdout);
await new Promise<void>((resolve) => stream.on('end', () => resolve()));
// Let the reporter flush before the summary line.
await new Promise((r) => setTimeout(r, 50));
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exitCode = failed > 0 ? 1 : 0;

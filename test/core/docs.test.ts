import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ERROR_CODES } from '../../src/core/errors.ts';
import { Config } from '../../src/core/config.ts';

test('docs/errors.md lists every error code with its HTTP status and retry flag', async () => {
  const doc = await readFile('docs/errors.md', 'utf8');
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
    assert.ok(row, `docs/errors.md has no row for ${code}`);
    assert.match(row, new RegExp(`\\| ${spec.status} \\| ${spec.retryable ? 'yes' : 'no'} \\|`), `${code}: status or retry flag differs from src/core/errors.ts`);
  }
});

test('docs/configuration.md documents every configuration key', async () => {
  const doc = await readFile('docs/configuration.md', 'utf8');
  const keys: string[] = [];
  for (const [k, v] of Object.entries(Config.shape)) {
    const inner = (v as { def?: { innerType?: { shape?: Record<string, unknown> } } }).def?.innerType?.shape;
    if (inner) for (const sub of Object.keys(inner)) keys.push(`${k}.${sub}`);
    else keys.push(k);
  }
  for (const k of keys) assert.ok(doc.includes(`| \`${k}\` |`), `docs/configuration.md has no row for ${k}`);
});

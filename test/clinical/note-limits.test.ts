import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { MAX_NOTE_CHARS, MAX_STATEMENTS_PER_PATTERN, parseClinicalNote } from '../../src/clinical/note.ts';
import { ClinicalFeatures } from '../../src/core/report.ts';
import { MAX_NOTE_BYTES } from '../../src/pipeline/intake.ts';

// Hostile notes: too long, built to make a regular expression backtrack, or stuffed with statements.

const MB = 1024 * 1024;

/** Pieces that begin or half-complete a pattern, repeated to fill a note. */
const ADVERSARIAL_SEEDS = [
  'PSA ', 'PSA: ', 'PSA level level level ', '1', '1.', '1,1', '9'.repeat(50), ' ', '\n', '-', 'a',
  'Gleason 3+', 'GS ', 'grade group ', '4/', '4 of ', '%', 'prior ', 'no ', 'robotic ', 'bone ', 'metastatic ',
  'T2', 'cT', 'T2N0M', 'year-old ', 'yo ', 'Age: ', 'ECOG ',
];

function fill(seed: string, size: number): string {
  return seed.repeat(Math.ceil(size / seed.length)).slice(0, size);
}

function elapsed(run: () => void): number {
  const start = performance.now();
  run();
  return performance.now() - start;
}

test('a 1 MB note is refused with INVALID_REQUEST, fast, before any pattern runs', () => {
  const note = fill('PSA: 1,1 Gleason 3+', MB);
  let caught: unknown;
  const ms = elapsed(() => {
    try {
      parseClinicalNote(note);
    } catch (error) {
      caught = error;
    }
  });
  assert.ok(caught instanceof AppError);
  assert.equal(caught.code, 'INVALID_REQUEST');
  assert.match(caught.message, new RegExp(`has ${note.length} characters; the limit is ${MAX_NOTE_CHARS}`));
  assert.ok(ms < 200, `took ${ms.toFixed(1)} ms`);
});

test('every note intake accepts is within the parser limit (UTF-16 code units never exceed UTF-8 bytes)', () => {
  assert.ok(MAX_NOTE_CHARS >= MAX_NOTE_BYTES, `parser limit ${MAX_NOTE_CHARS} < intake limit ${MAX_NOTE_BYTES}`);
  for (const text of ['a', 'é', '€', '😀']) assert.ok(text.length <= Buffer.byteLength(text, 'utf8'), text);
});

test('a note of exactly the limit is parsed; one character more is refused', () => {
  const note = fill('Age: 68. ', MAX_NOTE_CHARS);
  assert.doesNotThrow(() => parseClinicalNote(note));
  assert.throws(() => parseClinicalNote(`${note}x`), (e: unknown) => e instanceof AppError && e.code === 'INVALID_REQUEST');
});

test('adversarial 1 MB notes (limit lifted) each finish in under 200 ms: no catastrophic backtracking', async (t) => {
  for (const seed of ADVERSARIAL_SEEDS) {
    await t.test(JSON.stringify(seed), () => {
      const note = fill(seed, MB);
      let result: ClinicalFeatures | undefined;
      const ms = elapsed(() => {
        result = parseClinicalNote(note, { maxChars: MB });
      });
      assert.ok(ms < 200, `took ${ms.toFixed(1)} ms`);
      ClinicalFeatures.parse(result);
    });
  }
});

test('a feature stated more times than the limit is reported, not read from a prefix', () => {
  const text = 'PSA 5. '.repeat(MAX_STATEMENTS_PER_PATTERN + 1);
  const result = parseClinicalNote(text);
  assert.equal(result.values['psa'], null);
  assert.deepEqual(result.issues.map((i) => [i.code, i.feature]), [['UNPARSEABLE', 'psa']]);
  assert.match(result.issues[0]?.message ?? '', /more than 64 statements of PSA/);
  assert.equal(result.spans.length, MAX_STATEMENTS_PER_PATTERN);
  // At the limit it is read.
  assert.equal(parseClinicalNote('PSA 5. '.repeat(MAX_STATEMENTS_PER_PATTERN)).values['psa'], 5);
});

test('random notes from clinical vocabulary: spans always match their offsets, and no value has an issue', () => {
  const vocabulary = [
    'PSA', ' ', ':', '=', '4', '4,5', '12.4', 'ng/mL', 'µg/L', 'Gleason', '3+4', '=7', '(4+3)', 'GS', 'GG', 'grade group', 'ISUP',
    'cT2b', 'T1c', 'N0', 'M1b', 'stage', 'of', '12', 'cores', '/', 'positive', 'negative', 'prior', 'no', 'radical prostatectomy',
    'treatment-naive', 'metastases', 'bone', 'ECOG', '-', 'year', 'old', 'yo', 'M', 'F', 'Age', 'sex', 'male', '%', '.', ',', '\n',
    'was', 'is', 'pending', '<', 'after', 'on', 'ADT', 'the', 'to', 'for', 'possible', 'y/o', '−',
  ];
  // A fixed linear congruential sequence: the same notes on every run.
  let state = 42;
  const next = (): number => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  for (let round = 0; round < 200; round++) {
    const parts: string[] = [];
    const words = 20 + Math.floor(next() * 300);
    for (let i = 0; i < words; i++) parts.push(vocabulary[Math.floor(next() * vocabulary.length)] ?? '', next() < 0.5 ? ' ' : '');
    const note = parts.join('');
    const result = ClinicalFeatures.parse(parseClinicalNote(note));
    for (const span of result.spans) assert.equal(note.slice(span.start, span.end), span.text, note);
    for (const issue of result.issues) {
      if (issue.feature !== undefined) assert.equal(result.values[issue.feature], null, `${issue.feature} has an issue and a value in: ${note}`);
    }
  }
});

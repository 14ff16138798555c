import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError, ERROR_CODES, toAppError } from '../../src/core/errors.ts';

test('every error code has an HTTP status and a hint that says what to do', () => {
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    assert.ok(spec.status >= 400 && spec.status < 600, code);
    assert.ok(spec.hint.length > 20, `${code} needs a useful hint`);
  }
});

test('unknown errors are INTERNAL and permanent; connection failures are transient', () => {
  const internal = toAppError(new Error('boom'));
  assert.equal(internal.code, 'INTERNAL');
  assert.equal(internal.retryable, false);
  const refused = toAppError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  assert.equal(refused.retryable, true);
  const app = new AppError('CORRUPT_IMAGE', 'bad');
  assert.equal(toAppError(app), app);
  assert.deepEqual(Object.keys(app.toJSON()), ['code', 'message', 'hint']);
});

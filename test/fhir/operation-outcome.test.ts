import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError, ERROR_CODES, type ErrorCode } from '../../src/core/errors.ts';
import { issueTypeFor, toOperationOutcome } from '../../src/fhir/operation-outcome.ts';
import { fhirIssues, validateFhirResource } from '../support/fhir-validator.ts';

test('an AppError becomes a valid OperationOutcome: severity error, mapped issue type, our code, message and hint', () => {
  const error = new AppError('UNSUPPORTED_MEDIA_TYPE', 'The upload is a GIF (magic bytes 47 49 46 38)');
  const outcome = toOperationOutcome(error);
  validateFhirResource(outcome);
  assert.deepEqual(outcome, {
    resourceType: 'OperationOutcome',
    issue: [
      {
        severity: 'error',
        code: 'not-supported',
        details: { coding: [{ system: 'urn:dxflow:error', code: 'UNSUPPORTED_MEDIA_TYPE' }] },
        diagnostics: 'The upload is a GIF (magic bytes 47 49 46 38). Send a PNG, JPEG, TIFF or DICOM file.',
      },
    ],
  });
});

test('error codes map to the FHIR issue type that describes them', () => {
  const expected: [ErrorCode, string][] = [
    ['UNSUPPORTED_MEDIA_TYPE', 'not-supported'],
    ['CORRUPT_IMAGE', 'invalid'],
    ['TRUNCATED_IMAGE', 'invalid'],
    ['CASE_NOT_FOUND', 'not-found'],
    ['MODEL_NOT_FOUND', 'not-found'],
    ['UNAUTHENTICATED', 'login'],
    ['FILE_TOO_LARGE', 'too-long'],
    ['IMAGE_TOO_LARGE', 'too-costly'],
    ['DATABASE_UNAVAILABLE', 'no-store'],
    ['STORAGE_UNAVAILABLE', 'no-store'],
    ['TIMEOUT', 'timeout'],
    ['CASE_NOT_FINISHED', 'transient'],
    ['INTERNAL', 'exception'],
  ];
  for (const [code, issueType] of expected) {
    const outcome = toOperationOutcome({ code, message: `Synthetic ${code}.`, hint: ERROR_CODES[code].hint });
    assert.equal(outcome.issue[0]?.code, issueType, code);
    validateFhirResource(outcome);
  }
});

test('every error code maps to a code of the required issue-type value set', () => {
  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
    assert.deepEqual(fhirIssues(toOperationOutcome(new AppError(code, 'Synthetic failure.'))), [], code);
  }
});

test('an unknown code falls back to exception and is still reported verbatim', () => {
  const outcome = toOperationOutcome({ code: 'RETIRED_CODE', message: 'Something failed', hint: '' });
  validateFhirResource(outcome);
  assert.equal(issueTypeFor('RETIRED_CODE'), 'exception');
  assert.equal(issueTypeFor('toString'), 'exception');
  assert.deepEqual(outcome.issue[0]?.details?.coding, [{ system: 'urn:dxflow:error', code: 'RETIRED_CODE' }]);
  assert.equal(outcome.issue[0]?.diagnostics, 'Something failed');
});

test('empty strings are left out rather than sent as invalid empty FHIR strings', () => {
  const outcome = toOperationOutcome({ code: '', message: ' ', hint: '' });
  validateFhirResource(outcome);
  assert.deepEqual(outcome.issue, [{ severity: 'error', code: 'exception' }]);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Bundle, Observation, Provenance, Resource } from '@medplum/fhirtypes';
import { toFhirBundle } from '../../src/fhir/bundle.ts';
import { succeededCase } from './cases.ts';
import { fhirIssues, validateFhirResource } from '../support/fhir-validator.ts';

// The validator must reject real defects, or every "valid" assertion elsewhere proves nothing. Each test
// breaks one thing in an otherwise valid bundle and expects exactly that defect to be reported.

function validBundle(): Bundle {
  return toFhirBundle(succeededCase(), {});
}

function entryOf<T extends Resource>(bundle: Bundle, type: T['resourceType']): T {
  const resource = bundle.entry?.find((e) => e.resource?.resourceType === type)?.resource;
  assert.ok(resource, `bundle has a ${type}`);
  return resource as T;
}

function messages(resource: Resource, bundle?: Bundle): string[] {
  return fhirIssues(resource, bundle ? { bundle } : {}).map((i) => `${i.path}: ${i.message}`);
}

test('the unbroken bundle is valid, so each defect below is the only one', () => {
  const bundle = validBundle();
  assert.deepEqual(messages(bundle), []);
  validateFhirResource(bundle);
});

test('an Observation without status is rejected (cardinality 1..1)', () => {
  const bundle = validBundle();
  const observation = entryOf<Observation>(bundle, 'Observation');
  delete (observation as Partial<Observation>).status;
  assert.deepEqual(messages(observation, bundle), ['Observation.status: Missing required property']);
  assert.throws(() => validateFhirResource(bundle), /Bundle\.entry\[1\]\.resource\.status: Missing required property/);
});

test('a status outside the required value set is rejected', () => {
  const bundle = validBundle();
  const observation = entryOf<Observation>(bundle, 'Observation');
  (observation as { status: string }).status = 'draft';
  assert.deepEqual(messages(observation, bundle), [
    'Observation.status: "draft" is not in the required value set http://hl7.org/fhir/ValueSet/observation-status',
  ]);
});

test('a code that its HL7 code system does not define is rejected', () => {
  const bundle = validBundle();
  const provenance = entryOf<Provenance>(bundle, 'Provenance');
  const coding = provenance.agent[0]?.type?.coding?.[0];
  assert.ok(coding);
  coding.code = 'robot';
  assert.deepEqual(messages(provenance, bundle), [
    'Provenance.agent[0].type.coding[0]: Unknown code "robot" in code system http://terminology.hl7.org/CodeSystem/provenance-participant-type',
  ]);
});

test('a display that does not match the code system is rejected', () => {
  const bundle = validBundle();
  const provenance = entryOf<Provenance>(bundle, 'Provenance');
  const coding = provenance.agent[0]?.type?.coding?.[0];
  assert.ok(coding);
  coding.display = 'Author';
  assert.match(messages(provenance, bundle).join('\n'), /Display "Author" for .*#assembler should be "Assembler"/);
});

test('an element of the wrong type and an unknown element are rejected', () => {
  const bundle = validBundle();
  const observation = entryOf<Observation>(bundle, 'Observation');
  Object.assign(observation, { valueQuantity: { value: '0.87' }, patientName: 'x' });
  const found = messages(observation, bundle).join('\n');
  assert.match(found, /Invalid JSON type: expected number, but got string/);
  assert.match(found, /Invalid additional property "patientName"/);
});

test('a reference that resolves to no entry of the bundle is rejected', () => {
  const bundle = validBundle();
  const observation = entryOf<Observation>(bundle, 'Observation');
  observation.device = { reference: 'urn:uuid:00000000-0000-8000-8000-000000000000' };
  assert.match(messages(bundle).join('\n'), /Reference "urn:uuid:0{8}-0000-8000-8000-0{12}" does not resolve to an entry of the bundle/);
});

test('a reference to an entry of a type the element does not allow is rejected', () => {
  const bundle = validBundle();
  const observation = entryOf<Observation>(bundle, 'Observation');
  const report = bundle.entry?.find((e) => e.resource?.resourceType === 'DiagnosticReport');
  assert.ok(report?.fullUrl);
  observation.device = { reference: report.fullUrl };
  assert.match(messages(observation, bundle).join('\n'), /Observation\.device: Invalid reference: got "DiagnosticReport"/);
});

test('an invariant of the base specification is enforced (bdl-7: fullUrl unique)', () => {
  const bundle = validBundle();
  const [first, second] = bundle.entry ?? [];
  assert.ok(first?.fullUrl && second);
  second.fullUrl = first.fullUrl;
  assert.match(messages(bundle).join('\n'), /Constraint bdl-7 not met/);
});

test('a resource type that is not in FHIR R4 (here a Medplum-only one) is rejected', () => {
  assert.throws(() => validateFhirResource({ resourceType: 'Project', name: 'x' } as unknown as Resource), /Project: Invalid resource type/);
});

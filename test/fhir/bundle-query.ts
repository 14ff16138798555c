import assert from 'node:assert/strict';
import type { Bundle, Resource } from '@medplum/fhirtypes';

// Reading a mapped bundle in tests: resources by type, references resolved by fullUrl.

export function resources<T extends Resource>(bundle: Bundle, type: T['resourceType']): T[] {
  return (bundle.entry ?? []).flatMap((e) => (e.resource?.resourceType === type ? [e.resource as T] : []));
}

export function only<T extends Resource>(bundle: Bundle, type: T['resourceType']): T {
  const found = resources<T>(bundle, type);
  assert.equal(found.length, 1, `exactly one ${type}`);
  return found[0] as T;
}

export function resolve(bundle: Bundle, reference: string | undefined): Resource | undefined {
  return bundle.entry?.find((e) => e.fullUrl === reference)?.resource;
}

/** Every `reference` string anywhere in the bundle. */
export function references(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(references);
  if (typeof node !== 'object' || node === null) return [];
  return Object.entries(node).flatMap(([key, value]) => (key === 'reference' && typeof value === 'string' ? [value] : references(value)));
}

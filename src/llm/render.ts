import { z } from 'zod';
import { AppError } from '../core/errors.ts';
import { ESCALATE_DISPLAY, LlmOutput, type AbstainReasonCode, type FeatureValue } from '../core/report.ts';

// Prompt templates: a deliberately small syntax that can only read the de-identified values below and
// never run code.
//
//   {{path}}                         a value, e.g. {{pipeline}}, {{recommendation.display}}
//   {{#each list}} … {{/each}}       repeats for every item; inside, the item's fields are variables
//   {{#if value}} … {{else}} … {{/if}}  false, null, "" and an empty list are false; numbers are true
//   {{! comment }}                   left out of the output
//
// A block tag or comment alone on its line takes the whole line with it, so templates can put block
// tags on lines of their own without leaving blank lines in the prompt. Values are inserted once and
// never read as template text again, so a value that happens to contain "{{" is just text.
// The variables are documented for prompt authors in prompts/README.md.

// ---------------------------------------------------------------------------------------------------
// What a prompt may be given. Each field is listed, and promptVariables copies only these fields: the
// free-text note, the case metadata and anything else a caller's object carries can never reach a
// template, whatever object is passed in.

export interface PromptFinding {
  code: string;
  label: string;
  probability: number;
}

export interface PromptClass {
  code: string;
  display: string;
  probability: number;
}

/**
 * The parts of a core Recommendation a prompt may see; a Recommendation can be passed as it is. An
 * escalation's reasons enter by code and feature only: their messages are free text that may quote
 * the note, so the prompt gets a fixed wording per code instead (REASON_TEXT). What the model would
 * have said (`withheld`) is not part of this type either.
 */
export type PromptRecommendation =
  | { status: 'recommended'; code: string; display: string; probability: number; alternatives: readonly PromptClass[]; model: { name: string; version: string } }
  | { status: 'abstained'; reasons: readonly { code: AbstainReasonCode; feature?: string | undefined }[]; model?: { name: string; version: string } | undefined };

export interface PromptInput {
  /** The pipeline name. */
  pipeline: string;
  /** Image-model findings. */
  findings: readonly PromptFinding[];
  /** De-identified clinical feature values by feature name (ClinicalFeatures.values); null is missing. */
  features: Readonly<Record<string, FeatureValue>>;
  /** The recommender's result, or null when the pipeline has no recommender. */
  recommendation: PromptRecommendation | null;
}

/** How each abstention reason reads in a prompt, whatever the message on the reason says. */
export const REASON_TEXT: Readonly<Record<AbstainReasonCode, string>> = {
  NO_CLINICAL_NOTE: 'no clinical note was provided',
  FEATURE_MISSING: 'a required clinical value is missing',
  FEATURE_OUT_OF_RANGE: 'a clinical value is outside the valid or trained range',
  FEATURE_CONTRADICTORY: 'the note gives contradictory values',
  FEATURE_UNPARSEABLE: 'a value in the note could not be read',
  LOW_IMAGE_QUALITY: 'the image quality is too low',
  LOW_IMAGE_CONFIDENCE: 'the image classifier is not confident',
  LOW_CONFIDENCE: 'the recommender is not confident',
};

/** The variables a template sees: PromptInput flattened into lists and plain values, in a fixed order. */
export interface PromptVariables {
  pipeline: string;
  findings: PromptFinding[];
  features: { name: string; value: FeatureValue }[];
  recommendation: {
    status: 'recommended' | 'abstained' | 'none';
    recommended: boolean;
    abstained: boolean;
    code: string | null;
    display: string | null;
    probability: number | null;
    /** "name version" of the recommender model. */
    model: string | null;
    alternatives: PromptClass[];
    /** `message` is the fixed wording of the code (REASON_TEXT). */
    reasons: { code: AbstainReasonCode; message: string; feature: string | null }[];
  };
}

function byProbability<T extends { code: string; probability: number }>(a: T, b: T): number {
  return b.probability - a.probability || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0);
}

export function promptVariables(input: PromptInput): PromptVariables {
  const findings = input.findings.map((f) => ({ code: f.code, label: f.label, probability: f.probability })).sort(byProbability);
  const features = Object.keys(input.features).sort().map((name) => ({ name, value: input.features[name] ?? null }));
  const rec = input.recommendation;
  let recommendation: PromptVariables['recommendation'];
  if (rec === null) {
    recommendation = { status: 'none', recommended: false, abstained: false, code: null, display: null, probability: null, model: null, alternatives: [], reasons: [] };
  } else if (rec.status === 'recommended') {
    recommendation = {
      status: 'recommended', recommended: true, abstained: false,
      code: rec.code, display: rec.display, probability: rec.probability,
      model: `${rec.model.name} ${rec.model.version}`,
      alternatives: rec.alternatives.map((a) => ({ code: a.code, display: a.display, probability: a.probability })).sort(byProbability),
      reasons: [],
    };
  } else {
    // Neither `withheld` nor the reasons' own messages are read (see PromptRecommendation): an
    // abstention is never to be presented as an answer, and messages may quote the note.
    recommendation = {
      status: 'abstained', recommended: false, abstained: true,
      code: null, display: ESCALATE_DISPLAY, probability: null,
      model: rec.model ? `${rec.model.name} ${rec.model.version}` : null,
      alternatives: [],
      reasons: rec.reasons.map((r) => ({ code: r.code, message: REASON_TEXT[r.code], feature: r.feature ?? null })),
    };
  }
  return { pipeline: input.pipeline, findings, features, recommendation };
}

// ---------------------------------------------------------------------------------------------------
// The shape of PromptVariables as the template checker sees it: which names exist, which are lists.

type Shape = { kind: 'value' } | { kind: 'list'; item: Fields } | { kind: 'object'; fields: Fields };
type Fields = Readonly<Record<string, Shape>>;

const value: Shape = { kind: 'value' };
const list = (item: Fields): Shape => ({ kind: 'list', item });

const VARIABLES: Fields = {
  pipeline: value,
  findings: list({ code: value, label: value, probability: value }),
  features: list({ name: value, value }),
  recommendation: {
    kind: 'object',
    fields: {
      status: value, recommended: value, abstained: value, code: value, display: value, probability: value, model: value,
      alternatives: list({ code: value, display: value, probability: value }),
      reasons: list({ code: value, message: value, feature: value }),
    },
  },
};

/** Every variable path a template may use, for messages and documentation. */
export function knownVariables(fields: Fields = VARIABLES, prefix = ''): string[] {
  return Object.entries(fields).flatMap(([name, shape]) => {
    const path = prefix + name;
    if (shape.kind === 'value') return [path];
    if (shape.kind === 'object') return knownVariables(shape.fields, `${path}.`);
    return [`${path}[]`, ...knownVariables(shape.item, `${path}[].`)];
  });
}

// ---------------------------------------------------------------------------------------------------
// Parsing.

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'value'; path: string[] }
  | { kind: 'each'; path: string[]; body: Node[] }
  | { kind: 'if'; path: string[]; then: Node[]; otherwise: Node[] };

/** A parsed template whose every variable is known; render it with renderTemplate. */
export interface Template {
  readonly nodes: readonly Node[];
}

type TagKind = 'value' | 'each' | 'if' | 'else' | 'end-each' | 'end-if' | 'comment';

interface Tag {
  kind: TagKind;
  path: string[];
  /** Offsets of the tag in the source, widened to the whole line when the tag stands alone on it. */
  start: number;
  end: number;
  /** Offset of "{{", for messages. */
  at: number;
  source: string;
}

const PATH = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const MAX_TEMPLATE_CHARS = 64 * 1024;

function position(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return `line ${line}, column ${column}`;
}

function invalid(text: string, offset: number, message: string): AppError {
 
  return new AppError('PROMPT_INVALID', `Template error at ${position(text, offset)}: ${message}`);
}

function classify(text: string, at: number, inner: string): { kind: TagKind; path: string[] } {
  const body = inner.trim();
  if (body.startsWith('!')) return { kind: 'comment', path: [] };
  if (body === 'else') return { kind: 'else', path: [] };
  if (body === '/each') return { kind: 'end-each', path: [] };
  if (body === '/if') return { kind: 'end-if', path: [] };
  const block = /^#(each|if)\s+(\S+)$/.exec(body);
  const target = block ? block[2] ?? '' : body;
  if (!PATH.test(target)) {
    throw invalid(text, at, `"{{${inner}}}" is not a variable, {{#each list}}, {{#if value}}, {{else}}, {{/each}}, {{/if}} or {{! comment}}. Variables are names joined by dots, e.g. {{recommendation.display}}.`);
  }
  const kind = block ? (block[1] as 'each' | 'if') : 'value';
  return { kind, path: target.split('.') };
}

function isBlank(s: string): boolean {
  return /^[ \t]*\r?$/.test(s);
}

function scanTags(text: string): Tag[] {
  const tags: Tag[] = [];
  let from = 0;
  for (;;) {
    const open = text.indexOf('{{', from);
    if (open < 0) break;
    const close = text.indexOf('}}', open + 2);
    if (close < 0) throw invalid(text, open, '"{{" is never closed with "}}".');
    const inner = text.slice(open + 2, close);
    if (inner.includes('{{')) throw invalid(text, open, '"{{" is never closed with "}}" before the next "{{".');
    const { kind, path } = classify(text, open, inner);
    let start = open;
    let end = close + 2;
    if (kind !== 'value') {
      const lineStart = text.lastIndexOf('\n', open - 1) + 1;
      const newline = text.indexOf('\n', end);
      const lineEnd = newline < 0 ? text.length : newline;
      if (isBlank(text.slice(lineStart, open)) && isBlank(text.slice(end, lineEnd))) {
        start = lineStart;
        end = newline < 0 ? text.length : newline + 1;
      }
    }
    tags.push({ kind, path, start, end, at: open, source: text.slice(open, close + 2) });
    from = close + 2;
  }
  return tags;
}

interface Frame {
  tag: Tag;
  /** Where the nodes of the branch being read go. */
  target: Node[];
  node: Extract<Node, { kind: 'each' | 'if' }>;
  sawElse: boolean;
}

/** Resolves a path against the variables visible at this point: innermost #each item first. */
function resolveShape(path: readonly string[], scopes: readonly Fields[]): Shape | undefined {
  const [head, ...rest] = path;
  if (head === undefined) return undefined;
  let shape: Shape | undefined;
  for (let i = scopes.length - 1; i >= 0 && shape === undefined; i--) {
    const fields = scopes[i];
    if (fields && Object.hasOwn(fields, head)) shape = fields[head];
  }
  for (const part of rest) {
    if (shape?.kind !== 'object' || !Object.hasOwn(shape.fields, part)) return undefined;
    shape = shape.fields[part];
  }
  return shape;
}

function checkVariable(text: string, tag: Tag, scopes: readonly Fields[]): Shape {
  const shape = resolveShape(tag.path, scopes);
  const name = tag.path.join('.');
  if (shape === undefined) {
    const here = scopes.length > 1 ? ' (inside {{#each}}, the item\'s fields too)' : '';
    throw invalid(text, tag.at, `unknown variable "${name}". Known variables${here}: ${knownVariables().join(', ')}.`);
  }
  if (tag.kind === 'value' && shape.kind !== 'value') {
    throw invalid(text, tag.at, shape.kind === 'list'
      ? `"${name}" is a list; write {{#each ${name}}} … {{/each}} and use the item's fields inside.`
      : `"${name}" is a group of values; use one of them, e.g. {{${name}.${Object.keys(shape.fields)[0] ?? ''}}}.`);
  }
  if (tag.kind === 'each' && shape.kind !== 'list') throw invalid(text, tag.at, `{{#each}} needs a list, and "${name}" is not one.`);
  if (tag.kind === 'if' && shape.kind === 'object') throw invalid(text, tag.at, `{{#if}} needs a value or a list, and "${name}" is a group of values.`);
  return shape;
}

/** Parses a template and checks every variable it names; throws PROMPT_INVALID saying where and why. */
export function parseTemplate(text: string): Template {
  if (text.trim() === '') throw new AppError('PROMPT_INVALID', 'The template is empty; write the prompt text.');
  if (text.length > MAX_TEMPLATE_CHARS) {
    throw new AppError('PROMPT_INVALID', `The template has ${text.length} characters, more than the ${MAX_TEMPLATE_CHARS} allowed; shorten it.`);
  }
  const root: Node[] = [];
  const stack: Frame[] = [];
  const scopes: Fields[] = [VARIABLES];
  let target = root;
  let offset = 0;
  for (const tag of scanTags(text)) {
    if (tag.start > offset) target.push({ kind: 'text', text: text.slice(offset, tag.start) });
    offset = tag.end;
    const top = stack.at(-1);
    switch (tag.kind) {
      case 'comment':
        break;
      case 'value':
        checkVariable(text, tag, scopes);
        target.push({ kind: 'value', path: tag.path });
        break;
      case 'each':
      case 'if': {
        const shape = checkVariable(text, tag, scopes);
        const node: Frame['node'] = tag.kind === 'each' ? { kind: 'each', path: tag.path, body: [] } : { kind: 'if', path: tag.path, then: [], otherwise: [] };
        target.push(node);
        stack.push({ tag, target, node, sawElse: false });
        if (node.kind === 'each' && shape.kind === 'list') scopes.push(shape.item);
        target = node.kind === 'each' ? node.body : node.then;
        break;
      }
      case 'else':
        if (top?.node.kind !== 'if' || top.sawElse) throw invalid(text, tag.at, '{{else}} belongs inside {{#if …}} … {{/if}}, once.');
        top.sawElse = true;
        target = top.node.otherwise;
        break;
      case 'end-each':
      case 'end-if': {
        const want = tag.kind === 'end-each' ? 'each' : 'if';
        if (top === undefined) throw invalid(text, tag.at, `${tag.source} closes a block that was never opened.`);
        if (top.node.kind !== want) throw invalid(text, tag.at, `${tag.source} closes ${top.tag.source} (${position(text, top.tag.at)}); close it with {{/${top.node.kind}}} first.`);
        stack.pop();
        if (top.node.kind === 'each') scopes.pop();
        target = top.target;
        break;
      }
    }
  }
  if (offset < text.length) target.push({ kind: 'text', text: text.slice(offset) });
  const open = stack.at(-1);
  if (open !== undefined) throw invalid(text, open.tag.at, `${open.tag.source} is never closed; add {{/${open.node.kind}}}.`);
  return { nodes: root };
}

// ---------------------------------------------------------------------------------------------------
// Rendering.

type Scope = Readonly<Record<string, unknown>>;

function lookup(path: readonly string[], scopes: readonly Scope[]): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return undefined;
  let current: unknown;
  for (let i = scopes.length - 1; i >= 0; i--) {
    const scope = scopes[i];
    if (scope && Object.hasOwn(scope, head)) {
      current = scope[head];
      break;
    }
  }
  for (const part of rest) {
    current = typeof current === 'object' && current !== null && Object.hasOwn(current, part) ? (current as Scope)[part] : undefined;
  }
  return current;
}

/** How values read in a prompt: numbers to at most 3 decimals, null as "missing". */
export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return 'missing';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
  return String(v);
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  return v !== null && v !== undefined && v !== false && v !== '';
}

function renderNodes(nodes: readonly Node[], scopes: Scope[], out: string[]): void {
  for (const node of nodes) {
    switch (node.kind) {
      case 'text':
        out.push(node.text);
        break;
      case 'value':
        out.push(formatValue(lookup(node.path, scopes)));
        break;
      case 'if':
        renderNodes(truthy(lookup(node.path, scopes)) ? node.then : node.otherwise, scopes, out);
        break;
      case 'each': {
        const items = lookup(node.path, scopes);
        if (!Array.isArray(items)) break;
        for (const item of items) {
          scopes.push(item as Scope);
          renderNodes(node.body, scopes, out);
          scopes.pop();
        }
        break;
      }
    }
  }
}

export function renderTemplate(template: Template, variables: PromptVariables): string {
  const out: string[] = [];
  renderNodes(template.nodes, [variables as unknown as Scope], out);
  return out.join('');
}

// ---------------------------------------------------------------------------------------------------
// The rendered prompt sent to a provider.

/** LlmOutput as JSON Schema (draft 2020-12), for the instructions and for servers with structured outputs. */
export const LLM_OUTPUT_JSON_SCHEMA: Record<string, unknown> = z.toJSONSchema(LlmOutput);

/**
 * The output contract, sent as the system message. It belongs to the code rather than to the versioned
 * template because the code validates the answer against LlmOutput: the two must never disagree.
 * It names "JSON", which OpenAI's json_object response format requires of the messages.
 */
export const OUTPUT_INSTRUCTIONS = [
  'Answer with exactly one JSON object and nothing else: no prose before or after it and no code fences.',
  'The object must conform to this JSON Schema (draft 2020-12):',
  JSON.stringify(LLM_OUTPUT_JSON_SCHEMA),
  'Use an empty list where you have nothing to say. Never include names, dates of birth, record numbers or other patient identifiers.',
].join('\n');

export interface RenderedPrompt {
  /** The output contract (OUTPUT_INSTRUCTIONS). */
  system: string;
  /** The rendered template. */
  user: string;
  /** The de-identified values the template was rendered from (for rule-based providers). */
  variables: PromptVariables;
}

/** Parses, checks and renders a template for one input. */
export function renderPrompt(templateText: string, input: PromptInput): RenderedPrompt {
  const variables = promptVariables(input);
  return { system: OUTPUT_INSTRUCTIONS, user: renderTemplate(parseTemplate(templateText), variables), variables };
}

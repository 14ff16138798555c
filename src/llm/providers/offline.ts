import type { LlmOutput } from '../../core/report.ts';
import type { Completion, LlmProvider } from '../provider.ts';
import { formatValue, type PromptVariables, type RenderedPrompt } from '../render.ts';

// The provider that needs no network: deterministic rules over the same de-identified values a prompt
// is rendered from. It is the default when no language-model endpoint is configured, and the fallback
// when the configured one fails. It restates what the pipeline found and what is missing; it invents
// no clinical knowledge of its own, and says that it is not a language model.

export const OFFLINE_MODEL = 'dxflow-rules-1';

/** Findings below this probability are not listed as differentials. */
const MIN_DIFFERENTIAL = 0.05;
/** A most likely finding below this probability asks for specialist review of the images. */
const UNCERTAIN_TOP = 0.6;
/** Alternatives below this probability are not listed as treatment considerations. */
const MIN_ALTERNATIVE = 0.1;
const MAX_ITEMS = 5;
const MAX_SUMMARY = 2000;

type Item<K extends string> = Record<K, string> & { rationale: string };

function uniqueBy<K extends string>(items: Item<K>[], key: K): Item<K>[] {
  const seen = new Set<string>();
  return items.filter((item) => {
    if (seen.has(item[key])) return false;
    seen.add(item[key]);
    return true;
  });
}

const reasonText = (r: PromptVariables['recommendation']['reasons'][number]): string => (r.feature ? `${r.message} (${r.feature})` : r.message);

const percent = (p: number): string => `${Math.round(p * 1000) / 10}%`;

function summaryOf(v: PromptVariables): string {
  const parts: string[] = [];
  const top = v.findings.slice(0, 3).map((f) => `${f.label || f.code} (${percent(f.probability)})`);
  parts.push(top.length ? `Image findings: ${top.join(', ')}.` : 'No image findings were recorded.');
  const rec = v.recommendation;
  if (rec.status === 'recommended') {
    parts.push(`The recommender${rec.model ? ` (${rec.model})` : ''} suggests ${rec.display} with probability ${formatValue(rec.probability)}.`);
  } else if (rec.status === 'abstained') {
    parts.push(`The recommender gave no recommendation and the case should be escalated to a specialist: ${rec.reasons.map(reasonText).join('; ')}.`);
  } else {
    parts.push('No treatment recommender ran in this pipeline.');
  }
  const missing = v.features.filter((f) => f.value === null).map((f) => f.name);
  if (missing.length) parts.push(`Missing clinical values: ${missing.join(', ')}.`);
  const notice = 'Produced by dxflow\'s offline rules from the structured result, not by a language model; for review by a clinician.';
  const body = parts.join(' ');
  const room = MAX_SUMMARY - notice.length - 1;
  return `${body.length > room ? `${body.slice(0, room - 1)}…` : body} ${notice}`;
}

function differentialsOf(v: PromptVariables): LlmOutput['differentials'] {
  const listed = v.findings.filter((f) => f.probability >= MIN_DIFFERENTIAL && (f.label || f.code));
  return listed.slice(0, MAX_ITEMS).map((f, i) => ({
    diagnosis: f.label || f.code,
    rationale: `Image model probability ${formatValue(f.probability)}, rank ${i + 1} of ${v.findings.length} findings.`,
  }));
}

function followUpTestsOf(v: PromptVariables): LlmOutput['followUpTests'] {
  const tests: Item<'test'>[] = [];
  for (const f of v.features) {
    if (f.value === null) tests.push({ test: `Record ${f.name}`, rationale: `${f.name} is missing from the clinical note.` });
  }
  for (const r of v.recommendation.reasons) {
    switch (r.code) {
      case 'NO_CLINICAL_NOTE':
        tests.push({ test: 'Provide the clinical note', rationale: reasonText(r) });
        break;
      case 'FEATURE_MISSING':
        tests.push({ test: r.feature ? `Record ${r.feature}` : 'Complete the clinical note', rationale: reasonText(r) });
        break;
      case 'FEATURE_OUT_OF_RANGE':
      case 'FEATURE_CONTRADICTORY':
      case 'FEATURE_UNPARSEABLE':
        tests.push({ test: r.feature ? `Verify ${r.feature}` : 'Verify the clinical note', rationale: reasonText(r) });
        break;
      case 'LOW_IMAGE_QUALITY':
        tests.push({ test: 'Repeat the image acquisition', rationale: reasonText(r) });
        break;
      case 'LOW_IMAGE_CONFIDENCE':
      case 'LOW_CONFIDENCE':
        tests.push({ test: 'Specialist review of the images and the note', rationale: reasonText(r) });
        break;
    }
  }
  const top = v.findings[0];
  if (top !== undefined && top.probability < UNCERTAIN_TOP) {
    tests.push({ test: 'Specialist review of the images', rationale: `The most likely image finding, ${top.label || top.code}, has probability ${formatValue(top.probability)} only.` });
  }
  return uniqueBy(tests, 'test').slice(0, 10);
}

function treatmentConsiderationsOf(v: PromptVariables): LlmOutput['treatmentConsiderations'] {
  const rec = v.recommendation;
  if (rec.status === 'abstained') {
    return [{ consideration: 'No treatment recommendation: escalate to a specialist', rationale: rec.reasons.map(reasonText).join('; ') || 'The recommender abstained.' }];
  }
  if (rec.status !== 'recommended' || !rec.display) return [];
  const items: Item<'consideration'>[] = [{
    consideration: rec.display,
    rationale: `Suggested by ${rec.model ?? 'the recommender'} with probability ${formatValue(rec.probability)}; a clinician decides.`,
  }];
  for (const a of rec.alternatives) {
    if (a.probability >= MIN_ALTERNATIVE && a.code !== rec.code) {
      items.push({ consideration: `Alternative: ${a.display}`, rationale: `The recommender gives it probability ${formatValue(a.probability)}.` });
    }
  }
  return uniqueBy(items, 'consideration').slice(0, MAX_ITEMS);
}

/** The rule-based output for one case's prompt variables. */
export function offlineOutput(variables: PromptVariables): LlmOutput {
  return {
    summary: summaryOf(variables),
    differentials: differentialsOf(variables),
    followUpTests: followUpTestsOf(variables),
    treatmentConsiderations: treatmentConsiderationsOf(variables),
  };
}

export function createOfflineProvider(): LlmProvider {
  return {
    name: 'offline',
    model: OFFLINE_MODEL,
    complete(prompt: RenderedPrompt, signal: AbortSignal): Promise<Completion> {
      if (signal.aborted) return Promise.reject(signal.reason);
      return Promise.resolve({ text: JSON.stringify(offlineOutput(prompt.variables)) });
    },
  };
}

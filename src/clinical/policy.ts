import type { XgboostManifest } from '../core/manifest.ts';
import type { ModelRef } from '../core/model-ref.ts';
import {
  ESCALATE_DISPLAY,
  type AbstainReason,
  type ClinicalFeatures,
  type FeatureIssue,
  type Recommendation,
} from '../core/report.ts';

// The confidence policy: when the platform must say "No recommendation — escalate to specialist"
// instead of the model's top class. It never guesses: any reason below withholds the answer, and every
// reason is reported in machine-readable form.

export interface ImageEvidence {
  /** Top probability of the image classifier and the threshold from its manifest. */
  topProbability: number;
  minProbability: number;
  /** Problems found by the image quality check (empty when acceptable). */
  qualityProblems: readonly string[];
}

export interface PolicyInput {
  manifest: XgboostManifest;
  model: ModelRef;
  /** Model input row in manifest feature order; null = missing. */
  row: readonly (number | null)[];
  clinical: ClinicalFeatures | undefined;
  image: ImageEvidence | undefined;
  /** Class probabilities in manifest label order. */
  probabilities: readonly number[];
}

const ISSUE_REASON: Record<FeatureIssue['code'], AbstainReason['code'] | undefined> = {
  NO_NOTE: 'NO_CLINICAL_NOTE',
  UNPARSEABLE: 'FEATURE_UNPARSEABLE',
  OUT_OF_RANGE: 'FEATURE_OUT_OF_RANGE',
  CONTRADICTORY: 'FEATURE_CONTRADICTORY',
  UNKNOWN_UNIT: 'FEATURE_UNPARSEABLE',
  // An unknown extra field does not touch what the model reads.
  UNKNOWN_FIELD: undefined,
};

export function decideRecommendation(input: PolicyInput): Recommendation {
  const { manifest, row, clinical, image, probabilities } = input;
  const reasons: AbstainReason[] = [];
  const used = new Set(manifest.inputs.features.filter((f) => f.source.startsWith('clinical:')).map((f) => f.source.slice('clinical:'.length)));

  // What the note parser refused to use, for features this model reads.
  for (const issue of clinical?.issues ?? []) {
    const code = ISSUE_REASON[issue.code];
    if (!code) continue;
    if (issue.code !== 'NO_NOTE' && issue.feature !== undefined && !used.has(issue.feature)) continue;
    reasons.push({ code, message: issue.message, ...(issue.feature ? { feature: issue.feature } : {}) });
  }
  if (!clinical && used.size > 0) reasons.push({ code: 'NO_CLINICAL_NOTE', message: 'The case has no clinical note; the recommender needs clinical features' });

  manifest.inputs.features.forEach((f, i) => {
    const value = row[i];
    const feature = f.source.split(':')[1] ?? f.name;
    if (value === null || value === undefined || Number.isNaN(value)) {
      const required = manifest.confidence.requiredFeatures.includes(f.name) || manifest.confidence.requiredFeatures.includes(feature);
      // A required value already reported as unparseable/contradictory/out of range needs no second reason.
      if (required && !reasons.some((r) => r.feature === feature)) {
        reasons.push({ code: 'FEATURE_MISSING', feature, message: `${feature} is required by ${manifest.name} and was not found` });
      }
      return;
    }
    if (f.range && (value < f.range[0] || value > f.range[1])) {
      reasons.push({ code: 'FEATURE_OUT_OF_RANGE', feature, message: `${feature} = ${value} is outside the range the model was trained on (${f.range[0]}–${f.range[1]})` });
    }
  });

  if (image) {
    for (const problem of image.qualityProblems) reasons.push({ code: 'LOW_IMAGE_QUALITY', message: problem });
    if (image.topProbability < image.minProbability) {
      reasons.push({ code: 'LOW_IMAGE_CONFIDENCE', message: `The image classifier's top probability ${image.topProbability.toFixed(3)} is below its threshold ${image.minProbability}` });
    }
  }

  const ranked = manifest.outputs.labels
    .map((l, i) => ({ code: l.code, display: l.display, probability: probabilities[i] ?? 0 }))
    .sort((a, b) => b.probability - a.probability);
  const [top, second] = ranked;
  if (!top) throw new Error(`${manifest.name} produced no probabilities`);
  const { minProbability, minMargin } = manifest.confidence;
  if (top.probability < minProbability) {
    // Messages never name the withheld class: they travel further (prompts, reports) than `withheld`.
    reasons.push({ code: 'LOW_CONFIDENCE', message: `The most likely class has probability ${top.probability.toFixed(3)}, below ${minProbability}` });
  } else if (second && top.probability - second.probability < minMargin) {
    reasons.push({ code: 'LOW_CONFIDENCE', message: `The two most likely classes (${top.probability.toFixed(3)} and ${second.probability.toFixed(3)}) are closer than ${minMargin}` });
  }

  if (reasons.length > 0) {
    return { status: 'abstained', display: ESCALATE_DISPLAY, reasons, withheld: ranked, model: input.model };
  }
  return { status: 'recommended', code: top.code, display: top.display, probability: top.probability, alternatives: ranked.slice(1), model: input.model };
}

import type { Billing, BillingSuggestion, ClinicalFeatures, Recommendation } from '../core/report.ts';
import { BILLING_CODES_V1, type BillingCondition, type BillingTable } from './billing-codes-v1.ts';
import { featureDefinition, isFeatureName } from './features.ts';
import { formatFeatureValue } from './observations.ts';

// Billing-code suggestions for a human coder, from a versioned table (billing-codes-v1.ts). Nothing here
// is a claim: the output always says suggestionsOnly, every item says why it was suggested and what must
// be true before it is used, and treatment codes follow only a recommendation the platform actually
// made — an escalation suggests no treatment.

export interface BillingInput {
  findings: ReadonlyArray<{ code: string; probability: number }>;
  clinical?: ClinicalFeatures | undefined;
  recommendation?: Recommendation | undefined;
}

interface Match {
  /** What in this case met the condition, as a sentence. */
  evidence: string;
  basedOn: string[];
}

const probability = (p: number): string => p.toFixed(2);

function describeFeature(feature: string, value: number | string | boolean): string {
  if (!isFeatureName(feature)) return `${feature} ${String(value)}`;
  const definition = featureDefinition(feature);
  return `${definition.label} ${formatFeatureValue(definition, value)}`;
}

function evaluate(condition: BillingCondition, input: BillingInput, best: ReadonlyMap<string, number>): Match | undefined {
  const values = input.clinical?.values ?? {};
  switch (condition.kind) {
    case 'finding': {
      const met = condition.codes.filter((code) => (best.get(code) ?? -1) >= condition.minProbability);
      if (met.length === 0) return undefined;
      const listed = met.map((code) => `${code} (probability ${probability(best.get(code) ?? 0)})`).join(', ');
      const threshold = condition.minProbability > 0 ? `, at or above ${probability(condition.minProbability)}` : '';
      return { evidence: `Image finding${met.length > 1 ? 's' : ''} ${listed}${threshold}.`, basedOn: met };
    }
    case 'feature-above': {
      const value = values[condition.feature];
      if (typeof value !== 'number' || !(value > condition.above)) return undefined;
      if (condition.unlessTrue !== undefined && values[condition.unlessTrue] === true) return undefined;
      return { evidence: `${describeFeature(condition.feature, value)} is above ${condition.above} ${condition.unit}.`, basedOn: [condition.feature] };
    }
    case 'feature-present': {
      const value = values[condition.feature];
      if (value === null || value === undefined) return undefined;
      return { evidence: `The note records ${describeFeature(condition.feature, value)}.`, basedOn: [condition.feature] };
    }
    case 'recommendation': {
      const recommendation = input.recommendation;
      if (recommendation?.status !== 'recommended' || recommendation.code !== condition.code) return undefined;
      return { evidence: `The recommender recommends ${recommendation.code} (probability ${probability(recommendation.probability)}).`, basedOn: [recommendation.code] };
    }
  }
}

/**
 * Suggested ICD-10-CM and CPT codes for a case, in table order (diagnoses first). A code reached by
 * two rows is listed once, with both reasons.
 */
export function suggestBilling(input: BillingInput, table: BillingTable = BILLING_CODES_V1): Billing {
  const best = new Map<string, number>();
  for (const finding of input.findings) {
    if (!Number.isFinite(finding.probability)) continue;
    best.set(finding.code, Math.max(best.get(finding.code) ?? -1, finding.probability));
  }
  const items: BillingSuggestion[] = [];
  const byCode = new Map<string, BillingSuggestion>();
  for (const row of table.rows) {
    const match = evaluate(row.when, input, best);
    if (!match) continue;
    const rationale = `${match.evidence} ${row.rationale}`;
    const key = `${row.system} ${row.code}`;
    const listed = byCode.get(key);
    if (listed) {
      listed.rationale = `${listed.rationale} ${rationale}`;
      listed.basedOn = [...new Set([...listed.basedOn, ...match.basedOn])];
      continue;
    }
    const item: BillingSuggestion = { system: row.system, code: row.code, display: row.display, rationale, basedOn: match.basedOn };
    items.push(item);
    byCode.set(key, item);
  }
  return { suggestionsOnly: true, tableVersion: table.version, items };
}

import type { Device, Media, Observation, ObservationComponent, Quantity, RiskAssessment } from '@medplum/fhirtypes';
import { AppError } from '../core/errors.ts';
import type { Heatmap, ShapExplanation } from '../core/report.ts';
import { DXFLOW_SYSTEM, MEDIA_TYPE, reportPartCoding, UCUM } from './codes.ts';
import { reference, type Entry } from './entry.ts';

// Why the models answered as they did: SHAP contributions of the tabular recommender and class
// activation maps of the image classifier.

export interface ShapContext {
  recordedAt: string;
  /** The Device of the explained model version, when the bundle has one. */
  device: Entry<Device> | undefined;
  /** The RiskAssessment whose recommended class is the explained output, and that class's display. */
  recommendation: { entry: Entry<RiskAssessment>; display: string | undefined } | undefined;
  /** The explained output is the class an abstention withheld (the stage explains it all the same). */
  withheld: boolean;
}

const MARGIN_NOTE =
  'SHAP values in margin space: the raw model score before the link function (log-odds for a binary logistic model, ' +
  'the class score before softmax for a multi-class one). The bias plus every contribution equals the model\'s margin ' +
  'for the explained output; a positive contribution moves the model towards that output.';

// An Observation with one component per feature: R4 components are "code value pairs that share the same
// attributes" (method, device, time), which a set of SHAP values of one prediction is. `focus` names the
// RiskAssessment the values explain: `derivedFrom` admits only measurement resources (Observation, Media,
// ImagingStudy …), and R4 `focus` covers "an intervention … another observation of the subject".
export function shapObservation(shap: ShapExplanation, context: ShapContext): Observation {
  const component: ObservationComponent[] = [
    {
      code: { coding: [reportPartCoding('shap-output')] },
      valueCodeableConcept: { coding: [{ system: DXFLOW_SYSTEM.modelOutput, code: shap.output }], text: outputText(shap.output, context) },
    },
    { code: { coding: [reportPartCoding('shap-bias')] }, valueQuantity: margin(shap.bias) },
    ...shap.contributions.map((c): ObservationComponent => ({
      code: { coding: [{ system: DXFLOW_SYSTEM.modelFeature, code: c.feature }], text: c.feature },
      valueQuantity: margin(c.contribution),
    })),
  ];
  return {
    resourceType: 'Observation',
    status: 'preliminary',
    code: { coding: [reportPartCoding('shap-contributions')], text: 'SHAP feature contributions' },
    ...(context.recommendation ? { focus: [reference(context.recommendation.entry)] } : {}),
    effectiveDateTime: context.recordedAt,
    issued: context.recordedAt,
    method: { text: `SHAP values (XGBoost pred_contribs, TreeSHAP) of model ${shap.model} ${shap.version} for output ${shap.output}` },
    ...(context.device ? { device: reference(context.device) } : {}),
    component,
    note: [{ text: MARGIN_NOTE }],
  };
}

// A withheld class is named by its code only and said to be withheld, so that no text reads as an answer.
function outputText(output: string, context: ShapContext): string {
  if (context.withheld) return `${output}: the class the model ranks first, withheld; no recommendation was made`;
  if (context.recommendation === undefined) return output;
  const display = context.recommendation.display;
  return `${display ? `${display} (${output})` : output}, the recommended class`;
}

/** A margin-space value: dimensionless in UCUM ("1"), named so it is not read as a probability. */
function margin(value: number): Quantity {
  return { value, unit: 'margin', system: UCUM, code: '1' };
}

const HEATMAP_METHOD: Readonly<Record<Heatmap['method'], string>> = {
  cam: 'Class activation map (CAM)',
  'grad-cam': 'Gradient-weighted class activation map (Grad-CAM)',
  'tile-scores': 'Whole-slide tile score map',
};

export interface HeatmapContext {
  recordedAt: string;
  device: Entry<Device> | undefined;
  /** Where the API serves the PNG (see heatmapFileName). */
  url: string;
  /** The explained finding as the report names it, e.g. "Tumour epithelium (TUM)". */
  explains: string;
}

// Media: R4 "a photo, video, or audio recording acquired or used in healthcare", with the content by
// reference (Attachment.url), which is how the overlay is served; DiagnosticReport.media links it to the
// report, the one place R4 provides for "key images" of a report.
export function heatmapMedia(heatmap: Heatmap, context: HeatmapContext): Media {
  return {
    resourceType: 'Media',
    status: 'completed',
    type: { coding: [{ system: MEDIA_TYPE, code: 'image', display: 'Image' }] },
    issued: context.recordedAt,
    ...(context.device ? { device: reference(context.device) } : {}),
    width: heatmap.width,
    height: heatmap.height,
    content: { contentType: 'image/png', url: context.url, title: heatmapComment(heatmap, context.explains) },
    note: [{
      text: `${HEATMAP_METHOD[heatmap.method]} of model ${heatmap.model}, overlaid on the analysed image: it shows where the ` +
        'model found evidence for the class, and is neither a segmentation nor a diagnosis.',
    }],
  };
}

/** The caption of a heatmap, for DiagnosticReport.media.comment and the attachment title. */
export function heatmapComment(heatmap: Heatmap, explains: string): string {
  return `${HEATMAP_METHOD[heatmap.method]} for ${explains}`;
}

/**
 * The file name under which the API serves a heatmap (GET /v1/cases/{id}/files/{name}): the last part of
 * its object key, which the pipeline writes as `cases/<case id>/<name>`. A key outside that folder could
 * not be served, so the result is broken; the message leaves the key out, as keys are not reviewed for PHI.
 */
export function heatmapFileName(caseId: string, heatmap: Heatmap): string {
  const folder = `cases/${caseId}/`;
  const name = heatmap.objectKey.startsWith(folder) ? heatmap.objectKey.slice(folder.length) : '';
  if (name === '' || name.includes('/')) {
    throw new AppError('INTERNAL', `Case ${caseId} has a ${heatmap.method} heatmap stored outside ${folder}; the API cannot serve it, so the FHIR bundle cannot link it.`);
  }
  return name;
}

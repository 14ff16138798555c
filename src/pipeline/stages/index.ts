import type { ModelCatalog } from '../../models/catalog.ts';
import { billingSuggestStage } from './billing-suggest.ts';
import { clinicalNoteStage } from './clinical-note.ts';
import { createImageQualityStage } from './image-quality.ts';
import { createLlmRecommendStage, type LlmStageDeps } from './llm-recommend.ts';
import { createModelRecommendStage } from './model-recommend.ts';
import { createStageRegistry, type StageRegistry } from '../stage.ts';
import type { ImageLimits } from './decode-input.ts';
import { createImageValidateStage } from './image-validate.ts';
import { createModelClassifyStage } from './model-classify.ts';
import { utilDelayStage } from './util-delay.ts';
import { createSlideTilesStage } from './slide-tiles.ts';
import { createModelClassifyCropStage, type ObjectReader } from './model-classify-crop.ts';
import { createModelDetectStage } from './model-detect.ts';
import { routeStage } from './route.ts';
import type { TileFanOut } from '../tiles.ts';

export interface StageDeps {
  models: ModelCatalog;
  limits: ImageLimits;
  llm: LlmStageDeps;
  /** Tile-batch fan-out; absent where no queue runs (listing, one-shot runs), where slide stages refuse. */
  fanOut?: TileFanOut | undefined;
  /** Reads stored objects (crops); absent where stages are only listed. */
  objects?: ObjectReader | undefined;
}

/** Every built-in stage, wired with its dependencies. Pipelines refer to them by name in `uses:`. */
export function createBuiltinStages(deps: StageDeps): StageRegistry {
  return createStageRegistry([
    createImageValidateStage(deps.limits),
    createImageQualityStage(deps.limits),
    createModelClassifyStage(deps),
    clinicalNoteStage,
    createModelRecommendStage(deps),
    createLlmRecommendStage(deps.llm),
    billingSuggestStage,
    createSlideTilesStage({ models: deps.models, fanOut: deps.fanOut }),
    createModelDetectStage(deps),
    createModelClassifyCropStage(deps),
    routeStage,
    utilDelayStage,
  ]);
}

import type { LlmProvider } from './provider.ts';
import { createOfflineProvider } from './providers/offline.ts';
import { createOpenAiProvider, type OpenAiProviderOptions } from './providers/openai.ts';

// The LLM part of dxflow (DESIGN.md §2, llm/): the prompt registry, rendering, providers and the
// recommendation step. Composition roots build a provider from the `llm.*` settings with
// createLlmProvider and hand it, with the database, to createLlmRecommender.

export { createPrompt, DEFAULT_LABEL, DEFAULT_PROMPT_NAME, DEFAULT_PROMPTS_DIR, ensureDefaultPrompts, getPrompt, listPrompts, promote } from './prompt-store.ts';
export type { PromptListing, PromptRef, PromptVersion, StoredPrompt } from './prompt-store.ts';
export type { Completion, LlmProvider, TokenUsage } from './provider.ts';
export { createOfflineProvider, OFFLINE_MODEL } from './providers/offline.ts';
export { createOpenAiProvider } from './providers/openai.ts';
export type { OpenAiProviderOptions } from './providers/openai.ts';
export { createLlmRecommender, parseLlmOutput } from './recommend.ts';
export type { LlmFailurePolicy, LlmRecommender, LlmRecommenderOptions } from './recommend.ts';
export { parseTemplate, renderPrompt } from './render.ts';
export type { PromptInput, RenderedPrompt } from './render.ts';

export interface LlmSettings extends Omit<OpenAiProviderOptions, 'baseUrl'> {
  /** An OpenAI-compatible endpoint; without one, the offline rules answer and nothing leaves the process. */
  baseUrl?: string;
}

/** The provider the settings ask for: the OpenAI-compatible endpoint when one is set, else the offline rules. */
export function createLlmProvider(settings: LlmSettings): LlmProvider {
  return settings.baseUrl ? createOpenAiProvider({ ...settings, baseUrl: settings.baseUrl }) : createOfflineProvider();
}

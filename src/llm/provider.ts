import type { RenderedPrompt } from './render.ts';

// What the recommender needs of a language model: one completion of a rendered prompt. Providers
// turn every failure into an AppError — LLM_UNAVAILABLE or TIMEOUT when trying again may help,
// LLM_REQUEST_REJECTED or LLM_OUTPUT_INVALID when it will not — and leave parsing the answer to the
// recommender, so every provider's answer passes the same validation.

export interface TokenUsage {
  prompt: number;
  completion: number;
}

export interface Completion {
  /** The model's answer as it came back; expected to be a JSON object. */
  text: string;
  tokens?: TokenUsage;
  /** Why generation stopped, as the server said ("stop", "length", …), when it said. */
  finishReason?: string;
}

export interface LlmProvider {
  /** The protocol or implementation, e.g. "openai" or "offline". */
  readonly name: string;
  /** The model the provider asks for. */
  readonly model: string;
  complete(prompt: RenderedPrompt, signal: AbortSignal): Promise<Completion>;
}

import { AppError, toAppError } from '../core/errors.ts';
import type { SqlExecutor } from '../core/ports.ts';
import { LlmOutput, LlmRecommendation } from '../core/report.ts';
import { DEFAULT_LABEL, DEFAULT_PROMPT_NAME, getPrompt } from './prompt-store.ts';
import type { Completion, LlmProvider } from './provider.ts';
import { createOfflineProvider } from './providers/offline.ts';
import { renderPrompt, type PromptInput, type RenderedPrompt } from './render.ts';

// The LLM recommendation step: the labelled prompt version from the registry, rendered with the
// case's de-identified values, sent to the provider; the answer parsed and validated against LlmOutput.
// When the provider fails or answers with something unusable, policy decides: `fallback` returns the
// offline rule-based output marked fallback: true with the reason, `error` throws the AppError (the
// runner retries it when it is transient). A missing or broken prompt is a configuration error and
// always throws: no output can honestly name the prompt it came from.

export type LlmFailurePolicy = 'fallback' | 'error';

export interface LlmRecommenderOptions {
  db: SqlExecutor;
  provider: LlmProvider;
  /** Answers when `provider` fails under the `fallback` policy; the offline rules by default. */
  fallbackProvider?: LlmProvider;
  promptName?: string;
  /** The prompt label to use; `production` by default. */
  label?: string;
  onFailure?: LlmFailurePolicy;
}

export interface LlmRecommender {
  recommend(input: PromptInput, signal?: AbortSignal): Promise<LlmRecommendation>;
}

const MAX_ISSUES = 5;

function describeIssues(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): string[] {
  return error.issues.slice(0, MAX_ISSUES).map((issue) => `${issue.path.length ? issue.path.map(String).join('.') : '(the object)'}: ${issue.message}`);
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

// Many models wrap JSON in a Markdown code fence even in JSON mode, with or without words around it.
const FENCED = /```(?:json)?[ \t]*\r?\n([\s\S]*?)```/i;

/** The model's answer as LlmOutput; LLM_OUTPUT_INVALID says what is wrong with it. */
export function parseLlmOutput(completion: Pick<Completion, 'text' | 'finishReason'>, source: string): LlmOutput {
  const text = completion.text.trim();
  let json = parseJson(text);
  const fenced = json.ok ? undefined : FENCED.exec(text)?.[1];
  if (fenced !== undefined) json = parseJson(fenced);
  if (!json.ok || typeof json.value !== 'object' || json.value === null || Array.isArray(json.value)) {
    const cut = completion.finishReason === 'length' ? ' The answer was cut off at the output limit (finish reason "length"); raise the server\'s output token limit.' : '';
    const why = json.ok ? 'it is JSON but not an object' : json.error;
    throw new AppError('LLM_OUTPUT_INVALID', `${source} answered with ${text.length} characters that are not a JSON object (${why}).${cut}`);
  }
  const parsed = LlmOutput.safeParse(json.value);
  if (!parsed.success) {
    const issues = describeIssues(parsed.error);
    throw new AppError('LLM_OUTPUT_INVALID', `${source} answered with JSON that does not match the output schema: ${issues.join('; ')}.`, { details: { issues } });
  }
  return parsed.data;
}

const describeProvider = (p: LlmProvider): string => `${p.name} model "${p.model}"`;

export function createLlmRecommender(options: LlmRecommenderOptions): LlmRecommender {
  const { db, provider } = options;
  const fallbackProvider = options.fallbackProvider ?? createOfflineProvider();
  const promptName = options.promptName ?? DEFAULT_PROMPT_NAME;
  const label = options.label ?? DEFAULT_LABEL;
  const onFailure = options.onFailure ?? 'fallback';

  async function ask(p: LlmProvider, prompt: RenderedPrompt, signal: AbortSignal): Promise<{ output: LlmOutput; completion: Completion }> {
    const completion = await p.complete(prompt, signal);
    return { output: parseLlmOutput(completion, describeProvider(p)), completion };
  }

  return {
    async recommend(input, signal = new AbortController().signal) {
      const started = performance.now();
      const stored = await getPrompt(db, promptName, { label });
      const rendered = renderPrompt(stored.template, input);
      const record = (p: LlmProvider, output: LlmOutput, completion: Completion, fallbackReason?: string): LlmRecommendation => LlmRecommendation.parse({
        provider: p.name,
        model: p.model,
        prompt: { name: stored.name, version: stored.version, label: stored.label },
        tokens: completion.tokens ?? null,
        latencyMs: performance.now() - started,
        fallback: fallbackReason !== undefined,
        ...(fallbackReason !== undefined ? { fallbackReason } : {}),
        output,
      });

      let failure: AppError;
      try {
        const { output, completion } = await ask(provider, rendered, signal);
        return record(provider, output, completion);
      } catch (e) {
        // Cancellation is the caller's decision, not a provider failure to paper over.
        if (signal.aborted) throw e;
        failure = toAppError(e);
      }
      if (onFailure === 'error' || provider === fallbackProvider) throw failure;
      const { output, completion } = await ask(fallbackProvider, rendered, signal);
      return record(fallbackProvider, output, completion, `${describeProvider(provider)} failed: ${failure.code}: ${failure.message}`);
    },
  };
}

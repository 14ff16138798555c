import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { z } from 'zod';
import { AppError, toAppError } from '../../core/errors.ts';
import type { Completion, LlmProvider } from '../provider.ts';
import { LLM_OUTPUT_JSON_SCHEMA, type RenderedPrompt } from '../render.ts';

// Any server that speaks OpenAI's chat completions protocol (OpenAI, Azure OpenAI, vLLM, Ollama,
// llama.cpp's server…), through the official SDK. The SDK retries connection failures, timeouts, 408,
// 409, 429 and 5xx answers itself with exponential back-off (honouring Retry-After); what is still
// failing after those retries becomes a retryable AppError, and any other 4xx a permanent one.

export interface OpenAiProviderOptions {
  /** The API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1 (Ollama). */
  baseUrl: string;
  /** Sent as a bearer token; without one no Authorization header is sent (local servers need none). */
  apiKey?: string;
  model: string;
  /** Longest wait for one HTTP attempt; with retries the call may take (maxRetries + 1) times as long. */
  timeoutMs: number;
  /** Retries after the first attempt (the SDK's own). */
  maxRetries?: number;
  /**
   * `json_object` (JSON mode) is understood by nearly every compatible server; `json_schema` (structured
   * outputs) also sends the output schema, for servers that constrain generation to it.
   */
  responseFormat?: 'json_object' | 'json_schema';
  /** Sampling temperature; 0 keeps repeated runs of one case as alike as the server allows. */
  temperature?: number;
}

const DEFAULT_MAX_RETRIES = 2;

// Only the parts of a chat.completion this provider reads; a body without them is not an answer.
const ChatCompletionBody = z.object({
  choices: z.array(z.object({
    message: z.object({ content: z.string().nullish(), refusal: z.string().nullish() }),
    finish_reason: z.string().nullish(),
  })).min(1),
  usage: z.object({ prompt_tokens: z.number().int().nonnegative(), completion_tokens: z.number().int().nonnegative() }).nullish().catch(null),
});

/** Checks the base URL and returns it as messages show it: origin and path. */
function checkEndpoint(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new AppError('CONFIG_INVALID', `The language-model base URL "${baseUrl}" is not a URL; give one such as http://127.0.0.1:11434/v1.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AppError('CONFIG_INVALID', `The language-model base URL must start with http:// or https://, not ${url.protocol}//.`);
  }
  // fetch refuses such URLs anyway, and repeats them, credentials included, in its error message.
  if (url.username !== '' || url.password !== '') {
    throw new AppError('CONFIG_INVALID', 'The language-model base URL contains a user name or password; remove them and put the key in DXFLOW_LLM_API_KEY.');
  }
  return `${url.origin}${url.pathname.replace(/\/$/, '')}`;
}

const MAX_SERVER_TEXT = 300;

/** A server's error text as it may appear in a message: an HTML error page must not flood the log. */
function clip(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > MAX_SERVER_TEXT ? `${flat.slice(0, MAX_SERVER_TEXT - 1)}…` : flat;
}

/** The innermost cause's message: "connect ECONNREFUSED 127.0.0.1:8000" rather than "fetch failed". */
function rootCause(e: unknown): string {
  let current = e;
  while (current instanceof Error && current.cause instanceof Error) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

// 408 and 409 are retried by the SDK as well: the server asks to try again, the request is not wrong.
function isTransientStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

export function createOpenAiProvider(options: OpenAiProviderOptions): LlmProvider {
  const endpoint = checkEndpoint(options.baseUrl);
  const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
  const apiKey = options.apiKey || undefined;
  const client = new OpenAI({
    baseURL: options.baseUrl,
    // The SDK insists on a key; when there is none, the Authorization header is removed instead.
    apiKey: apiKey ?? 'none',
    ...(apiKey === undefined ? { defaultHeaders: { Authorization: null } } : {}),
    // Set explicitly so that OPENAI_* variables in the environment cannot change what is sent.
    organization: null,
    project: null,
    timeout: options.timeoutMs,
    maxRetries,
    // Failures reach the caller as AppErrors; the SDK's own console logging would bypass pino.
    logLevel: 'off',
  });
  const attempts = `${maxRetries + 1} attempt${maxRetries === 0 ? '' : 's'}`;

  function failure(e: unknown, signal: AbortSignal): unknown {
    // The caller gave up (shutdown, the runner's deadline): its reason, not an error of the server.
    if (signal.aborted) return signal.reason;
    const cause = { cause: e };
    if (e instanceof APIConnectionTimeoutError) {
      return new AppError('TIMEOUT', `The language-model server at ${endpoint} did not answer within ${options.timeoutMs} ms (${attempts}).`, cause);
    }
    if (e instanceof APIUserAbortError) return new AppError('TIMEOUT', `The request to the language-model server at ${endpoint} was aborted.`, cause);
    if (e instanceof APIConnectionError) {
      return new AppError('LLM_UNAVAILABLE', `The language-model server at ${endpoint} could not be reached (${attempts}): ${rootCause(e)}`, cause);
    }
    if (e instanceof APIError && typeof e.status === 'number') {
      const details = { status: e.status };
      return isTransientStatus(e.status)
        ? new AppError('LLM_UNAVAILABLE', `The language-model server at ${endpoint} answered HTTP ${clip(e.message)} (${attempts}).`, { ...cause, details })
        : new AppError('LLM_REQUEST_REJECTED', `The language-model server at ${endpoint} refused the request for model "${options.model}": HTTP ${clip(e.message)}.`, { ...cause, details });
    }
    if (e instanceof SyntaxError) {
      return new AppError('LLM_OUTPUT_INVALID', `The language-model server at ${endpoint} answered with a body that is not JSON: ${clip(e.message)}`, cause);
    }
    return toAppError(e);
  }

  const responseFormat = options.responseFormat === 'json_schema'
    ? { type: 'json_schema' as const, json_schema: { name: 'llm_output', schema: LLM_OUTPUT_JSON_SCHEMA, strict: false } }
    : { type: 'json_object' as const };

  return {
    name: 'openai',
    model: options.model,
    async complete(prompt: RenderedPrompt, signal: AbortSignal): Promise<Completion> {
      let body: unknown;
      try {
        // Only the two rendered messages are sent: prompt.variables stays in this process.
        body = await client.chat.completions.create(
          {
            model: options.model,
            messages: [
              { role: 'system', content: prompt.system },
              { role: 'user', content: prompt.user },
            ],
            response_format: responseFormat,
            temperature: options.temperature ?? 0,
          },
          { signal },
        );
      } catch (e) {
        throw failure(e, signal);
      }
      const parsed = ChatCompletionBody.safeParse(body);
      if (!parsed.success) {
        throw new AppError('LLM_OUTPUT_INVALID', `The language-model server at ${endpoint} answered with something that is not a chat completion (no choices with a message).`);
      }
      const [choice] = parsed.data.choices;
      const finishReason = choice?.finish_reason ?? undefined;
      const text = choice?.message.content ?? '';
      if (text.trim() === '') {
        const why = choice?.message.refusal ? `it refused: ${clip(choice.message.refusal)}` : `finish reason ${finishReason ?? 'not given'}`;
        throw new AppError('LLM_OUTPUT_INVALID', `Model "${options.model}" at ${endpoint} answered with no text (${why}).`);
      }
      const usage = parsed.data.usage;
      return {
        text,
        ...(usage ? { tokens: { prompt: usage.prompt_tokens, completion: usage.completion_tokens } } : {}),
        ...(finishReason !== undefined ? { finishReason } : {}),
      };
    },
  };
}

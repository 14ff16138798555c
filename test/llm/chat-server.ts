import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

// A real HTTP server on 127.0.0.1 that speaks the OpenAI chat completions protocol
// (POST /v1/chat/completions → a chat.completion object), scripted per test. It records every request
// as received on the wire, so tests assert what actually left the process.

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The body exactly as received. */
  raw: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  body: ChatRequestBody | undefined;
}

export interface ChatRequestBody {
  model: string;
  messages: { role: string; content: string }[];
  response_format?: { type: string; json_schema?: { name: string; schema: unknown } };
  temperature?: number;
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** An object is sent as JSON; a string is sent as it is. */
  body: unknown;
}

/** 'hang' never answers: the client's timeout must end the request. */
export type Script = (request: ReceivedRequest, index: number) => Reply | 'hang';

export interface ChatServer {
  /** The API root to give the provider, e.g. http://127.0.0.1:PORT/v1. */
  baseUrl: string;
  requests: ReceivedRequest[];
}

export function chatCompletion(content: string | null, options: { usage?: { prompt_tokens: number; completion_tokens: number } | null; finishReason?: string; model?: string } = {}): Reply {
  const usage = options.usage === undefined ? { prompt_tokens: 321, completion_tokens: 87 } : options.usage;
  return {
    body: {
      id: 'chatcmpl-test',
      object: 'chat.completion',
      created: 1_767_225_600,
      model: options.model ?? 'test-model',
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: options.finishReason ?? 'stop', logprobs: null }],
      ...(usage === null ? {} : { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } }),
    },
  };
}

export async function startChatServer(t: TestContext, script: Script): Promise<ChatServer> {
  const requests: ReceivedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: ChatRequestBody | undefined;
      try {
        body = JSON.parse(raw) as ChatRequestBody;
      } catch {
        body = undefined;
      }
      const received: ReceivedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw, body };
      requests.push(received);
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}`, type: 'invalid_request_error' } }));
        return;
      }
      const reply = script(received, requests.length - 1);
      if (reply === 'hang') return;
      const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers }).end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { baseUrl: `http://127.0.0.1:${port}/v1`, requests };
}

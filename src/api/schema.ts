import { z } from 'zod';

/**
 * JSON Schema for Fastify from a zod schema. Response schemas are allowlists: fast-json-stringify
 * serialises only the listed properties, so nothing unlisted (PHI in metadata) can leak into a response.
 */
export function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io: 'output', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

export const ErrorResponse = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    hint: z.string(),
    caseId: z.string().optional(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});

import { z } from 'zod';

/** Which model version produced something: name, version, kind and the artifact's sha256. */
export const ModelRef = z.object({
  name: z.string(),
  version: z.string(),
  kind: z.string(),
  sha256: z.string(),
});
export type ModelRef = z.infer<typeof ModelRef>;

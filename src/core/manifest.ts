import { z } from 'zod';

// Model manifest (DESIGN.md §4): YAML next to the artifact. The runtime never trusts an artifact whose
// sha256 differs from the manifest.

const Preprocess = z.object({
  resize: z.object({ width: z.number().int().positive(), height: z.number().int().positive(), fit: z.enum(['fill', 'cover', 'contain']).default('fill') }),
  colour: z.enum(['rgb', 'bgr', 'grey']).default('rgb'),
  /** Pixel values are divided by this before mean/std (255 maps 8-bit to [0,1]). */
  scale: z.number().positive().default(255),
  mean: z.array(z.number()).min(1),
  std: z.array(z.number().positive()).min(1),
  layout: z.enum(['nchw', 'nhwc']).default('nchw'),
});

export const ModelManifest = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, ".", "_" or "-"'),
  version: z.string().min(1),
  kind: z.enum(['onnx', 'xgboost', 'remote']),
  artifact: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits (sha256sum of the artifact)'),
  inputs: z.object({
    name: z.string(),
    preprocess: Preprocess,
  }),
  outputs: z.object({
    name: z.string(),
    activation: z.enum(['softmax', 'sigmoid', 'none']).default('softmax'),
    labels: z.array(z.object({ code: z.string(), display: z.string() })).min(1),
    /** Named intermediate outputs (e.g. the last feature map for CAM). */
    featureMap: z.string().optional(),
  }),
  confidence: z.object({ minProbability: z.number().min(0).max(1).default(0) }).default({ minProbability: 0 }),
  intendedUse: z.string(),
  trainingData: z.string(),
  metrics: z.record(z.string(), z.number()).default({}),
  card: z.string().optional(),
});
export type ModelManifest = z.infer<typeof ModelManifest>;

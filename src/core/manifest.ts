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

const Label = z.object({ code: z.string().min(1), display: z.string().min(1) });

/** When the platform refuses to answer (escalates) instead of returning the model's top class. */
const Confidence = z.object({
  /** The top class must reach this probability. */
  minProbability: z.number().min(0).max(1).default(0),
  /** The top two classes must be at least this far apart. */
  minMargin: z.number().min(0).max(1).default(0),
  /** Inputs without which the model must not be asked. */
  requiredFeatures: z.array(z.string()).default([]),
}).strict();

const common = {
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, ".", "_" or "-"'),
  version: z.string().min(1),
  artifact: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits (sha256sum of the artifact)'),
  confidence: Confidence.default({ minProbability: 0, minMargin: 0, requiredFeatures: [] }),
  intendedUse: z.string(),
  trainingData: z.string(),
  metrics: z.record(z.string(), z.number()).default({}),
  card: z.string().optional(),
};

export const OnnxManifest = z.object({
  ...common,
  kind: z.literal('onnx'),
  inputs: z.object({
    name: z.string(),
    preprocess: Preprocess,
  }),
  outputs: z.object({
    name: z.string(),
    activation: z.enum(['softmax', 'sigmoid', 'none']).default('softmax'),
    labels: z.array(Label).min(1),
    /** The last convolutional feature map [N,C,H,W], fetched for class activation maps. */
    featureMap: z.string().optional(),
  }),
  explanation: z.object({
    /** CAM for a global-average-pooling + linear head: a JSON file with the head's `weight` [classes][C]. */
    cam: z.object({ weights: z.string().min(1) }).optional(),
    /**
     * Grad-CAM for a head that is not linear: an ONNX model of the head alone, mapping the feature map
     * [N,C,H,W] (input) to class scores before softmax [N,K] (output).
     */
    gradCam: z.object({ head: z.string().min(1), input: z.string().min(1), output: z.string().min(1) }).optional(),
  }).default({}),
  /**
   * How the model reads whole-slide images (DESIGN.md §1.1): the physical resolution it was trained at,
   * the tile side in model pixels, the class whose tile probability is pooled into the slide score, and
   * the pooling rule. Absent for models that only see whole images.
   */
  tiles: z.object({
    /** µm per pixel of the model's tiles. */
    mpp: z.number().positive(),
    /** Tile side in model pixels; the preprocess resize should match it. */
    size: z.number().int().min(8).max(4096),
    /** Label code whose probability is the tile score. */
    scoreClass: z.string().min(1),
    pooling: z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('mean') }).strict(),
      z.object({ kind: z.literal('top-k'), k: z.number().int().positive() }).strict(),
      /** Attention pooling: `output` is a model output of one attention logit per tile. */
      z.object({ kind: z.literal('attention'), output: z.string().min(1) }).strict(),
    ]),
    /** Tiles with less tissue than this fraction are not scored. */
    minTissueFraction: z.number().min(0).max(1).default(0.25),
    /** µm per pixel assumed for slides that do not record their resolution; unset → such slides are refused. */
    fallbackMpp: z.number().positive().optional(),
  }).strict().optional(),
  /**
   * For object detectors: how the output is read (src/models/detector.ts). `yolo`: one row per
   * prediction, (cx, cy, w, h, objectness, one score per label), as [N, rows, 5 + C] or [N, 5 + C, rows];
   * a detection's score is objectness × its best class score. Absent for classifiers.
   */
  detection: z.object({
    format: z.literal('yolo'),
    /** Which axis holds the rows; inferred from the output's shape when unset. */
    layout: z.enum(['rows', 'columns']).optional(),
    /** Box values in model-input pixels (`pixels`) or as fractions of the input size (`normalized`). */
    boxes: z.enum(['pixels', 'normalized']).default('pixels'),
    /** Detections scoring below this (objectness × class score) are dropped. */
    scoreThreshold: z.number().min(0).max(1).default(0.25),
    /** Non-maximum suppression: a box overlapping a better box of the same label by more than this IoU is dropped. */
    iouThreshold: z.number().min(0).max(1).default(0.45),
    maxDetections: z.number().int().positive().max(1000).default(100),
    /** Fill of the letterbox borders (preprocess fit `contain`), 8-bit RGB. */
    padColour: z.tuple([z.number().int().min(0).max(255), z.number().int().min(0).max(255), z.number().int().min(0).max(255)]).default([114, 114, 114]),
    /** One label per class score, in output order; the same codes as outputs.labels. */
    labels: z.array(Label).min(1),
  }).strict().optional(),
}).superRefine((m, ctx) => {
  if (m.tiles && !m.outputs.labels.some((l) => l.code === m.tiles?.scoreClass)) {
    ctx.addIssue({ code: 'custom', path: ['tiles', 'scoreClass'], message: `"${m.tiles.scoreClass}" is not one of the output labels` });
  }
  if (m.detection) {
    const codes = m.outputs.labels.map((l) => l.code).join(', ');
    if (m.detection.labels.map((l) => l.code).join(', ') !== codes) {
      ctx.addIssue({ code: 'custom', path: ['detection', 'labels'], message: `must list the same codes in the same order as outputs.labels (${codes})` });
    }
    if (m.outputs.activation === 'softmax') {
      ctx.addIssue({ code: 'custom', path: ['outputs', 'activation'], message: 'a detector scores each row on its own: use "none" (scores are probabilities) or "sigmoid" (scores are logits)' });
    }
    if (m.inputs.preprocess.resize.fit === 'cover') {
      ctx.addIssue({ code: 'custom', path: ['inputs', 'preprocess', 'resize', 'fit'], message: 'a detector must see the whole image: use "contain" (letterbox) or "fill"' });
    }
  }
});
export type OnnxManifest = z.infer<typeof OnnxManifest>;

export const XgboostFeature = z.object({
  name: z.string().min(1),
  /** Where the value comes from: `image:<finding code>` (that finding's probability), `clinical:<feature>`, `input:<column>`. */
  source: z.string().regex(/^(image|clinical|input):[A-Za-z0-9_.-]+$/, 'image:<finding>, clinical:<feature> or input:<column>'),
  /** The range seen in training; a value outside it is out of distribution and the model abstains. */
  range: z.tuple([z.number(), z.number()]).optional(),
});
export type XgboostFeature = z.infer<typeof XgboostFeature>;

export const XgboostManifest = z.object({
  ...common,
  kind: z.literal('xgboost'),
  inputs: z.object({ features: z.array(XgboostFeature).min(1) }),
  /** One label per class; for binary models [negative, positive]. */
  outputs: z.object({ labels: z.array(Label).min(1) }),
});
export type XgboostManifest = z.infer<typeof XgboostManifest>;

export const ModelManifest = z.discriminatedUnion('kind', [OnnxManifest, XgboostManifest]);
export type ModelManifest = z.infer<typeof ModelManifest>;

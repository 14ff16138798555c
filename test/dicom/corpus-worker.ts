import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { AppError } from '../../src/core/errors.ts';
import { decodeDicomRgb, type DicomLimits } from '../../src/dicom/index.ts';

// Decodes one corpus file per message, in a worker thread so that the test can stop a file that hangs
// (a synchronous loop cannot be interrupted from its own thread) and carry on with a fresh worker.

export interface CorpusRequest {
  file: string;
  limits: DicomLimits;
}

export type CorpusOutcome =
  | { file: string; outcome: 'decoded'; width: number; height: number; frames: number; ms: number; rgbBytes: number }
  | { file: string; outcome: 'rejected'; code: string; message: string; ms: number }
  | { file: string; outcome: 'crashed'; message: string; ms: number };

parentPort?.on('message', (request: CorpusRequest) => {
  const started = performance.now();
  type WithoutFileAndTime<T> = T extends unknown ? Omit<T, 'file' | 'ms'> : never;
  const reply = (outcome: WithoutFileAndTime<CorpusOutcome>): void => {
    parentPort?.postMessage({ file: request.file, ms: performance.now() - started, ...outcome });
  };
  decodeDicomRgb(readFileSync(request.file), { limits: request.limits }).then(
    (rgb) => reply({ outcome: 'decoded', width: rgb.width, height: rgb.height, frames: rgb.frames, rgbBytes: rgb.data.length }),
    (error: unknown) => {
      if (error instanceof AppError) reply({ outcome: 'rejected', code: error.code, message: error.message });
      else reply({ outcome: 'crashed', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    },
  );
});

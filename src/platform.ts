import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Config } from './core/config.ts';
import type { Database, JobQueue, ObjectStore } from './core/ports.ts';
import { openDatabase } from './adapters/db/database.ts';
import { migrate } from './adapters/db/migrate.ts';
import { createFolderStore } from './adapters/objects/folder.ts';
import { createPgBossQueue } from './adapters/queue/pgboss.ts';
import { createLlmProvider, createOfflineProvider, ensureDefaultPrompts } from './llm/index.ts';
import { createModelCatalog, type ModelCatalog } from './models/catalog.ts';
import { createIntake, RUN_CASE_QUEUE, type Intake } from './pipeline/intake.ts';
import { createEventIntake, folderObjectSource, type EventIntake } from './pipeline/events.ts';
import { createDicomIngest, type DicomIngest } from './pipeline/dicom-ingest.ts';
import { readInstanceIds } from './imaging/dicom-ids.ts';
import { serverDeidentificationKey } from './dicom/deid-key.ts';
import { deidentifyDicom, type DeidentificationKey } from './dicom/deidentify/index.ts';
import { createRunner, type Runner, type RunnerLog } from './pipeline/runner.ts';
import { loadPipelineCatalog, type PipelineCatalog } from './pipeline/spec.ts';
import { createBuiltinStages } from './pipeline/stages/index.ts';
import type { StageRegistry } from './pipeline/stage.ts';
import { createTileFanOut, TILE_BATCH_QUEUE, type TileFanOut } from './pipeline/tiles.ts';

/**
 * A tile batch takes seconds; its worker reports every half of this, and a batch whose worker died is
 * retried after one missed report (pg-boss's lower bound is 10 s).
 */
const TILE_BATCH_HEARTBEAT_SECONDS = 10;

// The composition root shared by the api, worker and cli entry points: the only place (with them) that
// chooses adapters. Embedded or distributed is decided here by configuration alone (DESIGN.md §3).

export interface Platform {
  config: Config;
  db: Database;
  objects: ObjectStore;
  queue: JobQueue;
  models: ModelCatalog;
  stages: StageRegistry;
  pipelines: PipelineCatalog;
  runner: Runner;
  intake: Intake;
  /** DICOM instances from the network, de-identified, grouped into studies that become cases. */
  dicom: DicomIngest;
  /** Cases from object-store events and the watched folder. */
  events: EventIntake;
  /** Whole-slide tile batches; undefined when the platform was opened without a queue. */
  fanOut: TileFanOut | undefined;
  /** Stops the queue, releases models and closes the database, in that order. */
  close(): Promise<void>;
}

export interface OpenOptions {
  log?: RunnerLog;
  /** Override the object store (tests); defaults to the folder store in the data directory. */
  objects?: ObjectStore;
  /** pg-boss schema (tests isolate themselves); defaults to pg-boss's own. */
  queueSchema?: string;
  /** Postgres schema for dxflow's tables (tests isolate themselves). */
  dbSchema?: string;
  /** false for one-shot runs (dxflow analyze): no queue is started and nothing can be enqueued. */
  withQueue?: boolean;
}

/** The queue of a one-shot run: it has no workers, so sending to it is a programming error. */
const noQueue: JobQueue = {
  async send() { throw new Error('this platform was opened without a queue'); },
  async sendMany() { throw new Error('this platform was opened without a queue'); },
  async releaseActive() { return 0; },
  wake() {},
  async work() { throw new Error('this platform was opened without a queue'); },
  async stop() {},
};

export async function openPlatform(config: Config, options: OpenOptions = {}): Promise<Platform> {
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, ...(options.dbSchema ? { schema: options.dbSchema } : {}) });
  try {
    await migrate(db);
    const objects = options.objects ?? createFolderStore(config.objectsDir ?? path.join(config.dataDir, 'objects'));
    const queue = options.withQueue === false ? noQueue : await createPgBossQueue(db, {
      // Declared up front: intake enqueues inside its transaction, where a queue cannot be created.
      queues: [RUN_CASE_QUEUE, { name: TILE_BATCH_QUEUE, exclusive: true, heartbeatSeconds: TILE_BATCH_HEARTBEAT_SECONDS, retryLimit: 3 }],
      ...(options.queueSchema ? { schema: options.queueSchema } : {}),
    });
    const models = createModelCatalog(config.modelsDir, { intraOpThreads: config.onnx.intraOpThreads });
    const limits = { maxPixels: config.limits.maxPixels, maxBytes: config.limits.maxBytes };
    await ensureDefaultPrompts(db);
    const llm = {
      db,
      provider: createLlmProvider({
        ...(config.llm.baseUrl ? { baseUrl: config.llm.baseUrl } : {}),
        ...(config.llm.apiKey ? { apiKey: config.llm.apiKey } : {}),
        model: config.llm.model,
        timeoutMs: config.llm.timeoutMs,
      }),
      fallbackProvider: createOfflineProvider(),
      onFailure: config.llm.onFailure,
      label: config.llm.promptLabel,
    };
    const owner = `${process.pid}-${randomUUID().slice(0, 8)}`;
    const fanOut = options.withQueue === false ? undefined : createTileFanOut({ db, objects, queue, models, owner, waitSeconds: config.worker.waitSeconds });
    const stages = createBuiltinStages({ models, limits, llm, fanOut, objects });
    const pipelines = await loadPipelineCatalog(config.pipelinesDir, stages);
    const runner = createRunner({
      db, objects, stages, pipelines,
      owner,
      leaseSeconds: config.worker.leaseSeconds,
      waitSeconds: config.worker.waitSeconds,
      retry: config.retry,
      ...(options.log ? { log: options.log } : {}),
    });
    const intake = createIntake({ db, objects, queue, pipelines, limits: { ...limits, maxSlideBytes: config.limits.maxSlideBytes } });
    let deidKey: Promise<DeidentificationKey> | undefined;
    const dicom = createDicomIngest({
      db, objects, intake, pipeline: config.dicom.pipeline, quietSeconds: config.dicom.quietSeconds,
      readIds: readInstanceIds,
      async prepare(bytes) {
        deidKey ??= serverDeidentificationKey(config.dataDir);
        const outcome = deidentifyDicom(bytes, { key: await deidKey, maxBytes: config.limits.maxBytes });
        return outcome.status === 'released' ? { status: 'released', bytes: outcome.bytes } : outcome;
      },
    });
    const events = createEventIntake({ db, intake, source: folderObjectSource(config.events.inboxDir ?? path.join(config.dataDir, 'inbox')), pipeline: config.events.pipeline });
    return {
      config, db, objects, queue, models, stages, pipelines, runner, intake, fanOut, events, dicom,
      async close() {
        await queue.stop();
        await models.close();
        await db.close();
      },
    };
  } catch (e) {
    await db.close().catch(() => undefined);
    throw e;
  }
}

import { createHash } from 'node:crypto';

// Groups received instances into studies. DICOM has no "end of study" message: a sender pushes instances
// one by one, over one or many associations or requests. A study is taken as complete once no instance
// of it arrived for quietMs, and is then handed on as one batch. Receiving is idempotent: an instance is
// known by its SOPInstanceUID and the sha256 of its bytes, so a resend is counted once, and a changed
// instance under the same SOPInstanceUID replaces the earlier one and is reported as a replacement.
//
// This implementation keeps its state in memory; a restart loses the studies still pending.

export interface AssemblerClock {
  now(): number;
  setTimer(ms: number, fn: () => void): { cancel(): void };
}

export const systemClock: AssemblerClock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

export interface AssemblerInstance {
  studyInstanceUid: string;
  sopInstanceUid: string;
  /** The instance bytes, hashed when sha256 is not given. */
  bytes?: Uint8Array;
  /** Hex sha256 of the instance bytes, when already known (the bytes need not be kept in memory then). */
  sha256?: string;
}

export type AssembledInstance<T> = T & { sha256: string; receivedAt: number };

export interface Replacement {
  sopInstanceUid: string;
  previousSha256: string;
  sha256: string;
  /** Set when the earlier version was filed under another study. */
  previousStudyInstanceUid?: string;
}

export interface StudyCompletionInfo {
  /** 1 for the first batch of a study, then 2, 3... for instances that arrived after it completed. */
  generation: number;
  replaced: Replacement[];
  /** Identical resends received while the study was pending. */
  duplicates: number;
  firstReceivedAt: number;
  lastReceivedAt: number;
}

export interface AddResult {
  outcome: 'added' | 'duplicate' | 'replaced';
  sha256: string;
}

export interface StudyAssemblerOptions<T extends AssemblerInstance> {
  quietMs: number;
  onStudyComplete(studyInstanceUid: string, instances: AssembledInstance<T>[], info: StudyCompletionInfo): void | Promise<void>;
  /** Called when onStudyComplete throws or rejects; by default a process warning is emitted. */
  onError?(error: unknown, studyInstanceUid: string): void;
  clock?: AssemblerClock;
  /** Completed studies whose instance hashes are remembered to recognise resends (default 1000). */
  rememberCompletedStudies?: number;
}

export interface StudyAssembler<T extends AssemblerInstance> {
  add(instance: T): AddResult;
  /** Completes every pending study now and waits for all onStudyComplete calls to settle. */
  flush(): Promise<void>;
  /** flush(), then refuses further instances. */
  close(): Promise<void>;
  /** Waits for the onStudyComplete calls under way. */
  whenIdle(): Promise<void>;
  pendingStudies(): string[];
}

interface Batch<T> {
  studyInstanceUid: string;
  instances: Map<string, AssembledInstance<T>>;
  replaced: Replacement[];
  duplicates: number;
  firstReceivedAt: number;
  lastReceivedAt: number;
  generation: number;
  timer: { cancel(): void } | undefined;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function createStudyAssembler<T extends AssemblerInstance>(options: StudyAssemblerOptions<T>): StudyAssembler<T> {
  const clock = options.clock ?? systemClock;
  const quietMs = options.quietMs;
  if (!Number.isFinite(quietMs) || quietMs < 0) throw new Error(`quietMs ${quietMs} must be a non-negative number`);
  const remember = options.rememberCompletedStudies ?? 1000;
  const pending = new Map<string, Batch<T>>();
  /** SOPInstanceUID → study of the pending batch holding it. */
  const pendingSop = new Map<string, string>();
  /** Completed studies, least recently completed first: their instance hashes and last generation. */
  const completed = new Map<string, { hashes: Map<string, string>; generation: number }>();
  /** The latest onStudyComplete call of each study: a study's batches are handed on in order. */
  const chains = new Map<string, Promise<void>>();
  const inFlight = new Set<Promise<void>>();
  let closed = false;

  const reportError = (error: unknown, study: string): void => {
    if (options.onError) options.onError(error, study);
    else process.emitWarning(`onStudyComplete failed for a study: ${error instanceof Error ? error.message : String(error)}`, 'StudyAssemblerWarning');
  };

  const arm = (batch: Batch<T>, ms: number): void => {
    batch.timer = clock.setTimer(ms, () => {
      batch.timer = undefined;
      if (pending.get(batch.studyInstanceUid) !== batch) return;
      const quietFor = clock.now() - batch.lastReceivedAt;
      // One timer per study, re-armed for the remainder rather than reset on every arrival.
      if (quietFor < quietMs) arm(batch, quietMs - quietFor);
      else complete(batch);
    });
  };

  const complete = (batch: Batch<T>): void => {
    batch.timer?.cancel();
    batch.timer = undefined;
    pending.delete(batch.studyInstanceUid);
    const instances = [...batch.instances.values()];
    for (const i of instances) pendingSop.delete(i.sopInstanceUid);
    const study = batch.studyInstanceUid;
    const record = completed.get(study) ?? { hashes: new Map<string, string>(), generation: 0 };
    completed.delete(study);
    for (const i of instances) record.hashes.set(i.sopInstanceUid, i.sha256);
    record.generation = batch.generation;
    completed.set(study, record);
    while (completed.size > remember) completed.delete(completed.keys().next().value as string);

    const info: StudyCompletionInfo = {
      generation: batch.generation,
      replaced: batch.replaced,
      duplicates: batch.duplicates,
      firstReceivedAt: batch.firstReceivedAt,
      lastReceivedAt: batch.lastReceivedAt,
    };
    const previous = chains.get(study) ?? Promise.resolve();
    const run = previous
      .then(() => options.onStudyComplete(study, instances, info))
      .catch((error: unknown) => {
        // Forget the hashes of a batch that was not handed on, so that a resend triggers it again.
        const r = completed.get(study);
        for (const i of instances) if (r?.hashes.get(i.sopInstanceUid) === i.sha256) r.hashes.delete(i.sopInstanceUid);
        reportError(error, study);
      })
      .finally(() => {
        inFlight.delete(run);
        if (chains.get(study) === run) chains.delete(study);
      });
    chains.set(study, run);
    inFlight.add(run);
  };

  const whenIdle = async (): Promise<void> => {
    while (inFlight.size > 0) await Promise.all([...inFlight]);
  };

  const flush = async (): Promise<void> => {
    for (const batch of [...pending.values()]) complete(batch);
    await whenIdle();
  };

  return {
    add(instance) {
      if (closed) throw new Error('The study assembler is closed');
      const study = instance.studyInstanceUid;
      const sop = instance.sopInstanceUid;
      if (!study || !sop) throw new Error('An instance needs a StudyInstanceUID and a SOPInstanceUID');
      let sha256 = instance.sha256;
      if (sha256 === undefined) {
        if (!instance.bytes) throw new Error('An instance needs its bytes or their sha256');
        sha256 = sha256Hex(instance.bytes);
      }
      const now = clock.now();
      let outcome: AddResult['outcome'] = 'added';
      let replacement: Replacement | undefined;

      const heldBy = pendingSop.get(sop);
      if (heldBy !== undefined) {
        const holder = pending.get(heldBy) as Batch<T>;
        const previous = holder.instances.get(sop) as AssembledInstance<T>;
        if (previous.sha256 === sha256 && heldBy === study) {
          holder.duplicates++;
          holder.lastReceivedAt = now;
          return { outcome: 'duplicate', sha256 };
        }
        holder.instances.delete(sop);
        pendingSop.delete(sop);
        if (holder.instances.size === 0 && heldBy !== study) {
          holder.timer?.cancel();
          pending.delete(heldBy);
        }
        outcome = 'replaced';
        replacement = { sopInstanceUid: sop, previousSha256: previous.sha256, sha256, ...(heldBy !== study ? { previousStudyInstanceUid: heldBy } : {}) };
      } else {
        const known = completed.get(study)?.hashes.get(sop);
        if (known === sha256) return { outcome: 'duplicate', sha256 };
        if (known !== undefined) {
          outcome = 'replaced';
          replacement = { sopInstanceUid: sop, previousSha256: known, sha256 };
        }
      }

      let batch = pending.get(study);
      if (!batch) {
        batch = {
          studyInstanceUid: study,
          instances: new Map(),
          replaced: [],
          duplicates: 0,
          firstReceivedAt: now,
          lastReceivedAt: now,
          generation: (completed.get(study)?.generation ?? 0) + 1,
          timer: undefined,
        };
        pending.set(study, batch);
      }
      batch.instances.set(sop, { ...instance, sha256, receivedAt: now });
      pendingSop.set(sop, study);
      if (replacement) batch.replaced.push(replacement);
      batch.lastReceivedAt = now;
      if (!batch.timer) arm(batch, quietMs);
      return { outcome, sha256 };
    },
    flush,
    async close() {
      closed = true;
      await flush();
    },
    whenIdle,
    pendingStudies: () => [...pending.keys()],
  };
}

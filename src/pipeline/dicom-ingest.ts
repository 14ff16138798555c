import { createHash } from 'node:crypto';
import { AppError, toAppError } from '../core/errors.ts';
import type { Database, ObjectStore } from '../core/ports.ts';
import type { Intake } from './intake.ts';

// DICOM instances from the network (C-STORE SCP, STOW-RS) become studies, and each study one case
// (DESIGN.md §1.3's event-driven intake, for hospitals). An instance is prepared first — de-identified,
// or quarantined when it may carry burned-in text — so that nothing with patient identity is stored or
// seen by a model. Instances are idempotent by SOP Instance UID and content hash; a study becomes a case
// once no instance arrived for the quiet period; sending a study again never makes a second case.

/** What ingest needs to know of an instance: its UIDs and a few attributes that carry no identity. */
export interface InstanceIds {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  modality: string | undefined;
  instanceNumber: number | undefined;
}

/** De-identification: the bytes to keep, or why the instance must not be released. */
export type Prepared = { status: 'released'; bytes: Buffer } | { status: 'quarantined'; reason: string };

export interface DicomIngestDeps {
  db: Database;
  objects: ObjectStore;
  intake: Intake;
  /** Pipeline of the cases studies become. */
  pipeline: string;
  quietSeconds: number;
  /** Reads the UIDs of Part-10 bytes; throws an AppError for a file that is not DICOM. */
  readIds(bytes: Buffer): InstanceIds;
  /** De-identifies (or quarantines) an instance before anything of it is stored. */
  prepare(bytes: Buffer): Promise<Prepared>;
}

export type StoreOutcome =
  | { status: 'stored' | 'duplicate' | 'replaced'; ids: InstanceIds }
  | { status: 'quarantined'; reason: string };

export function createDicomIngest(deps: DicomIngestDeps) {
  const { db, objects } = deps;

  /** Stores one instance (de-identified); the study's quiet period starts again. */
  async function store(original: Buffer): Promise<StoreOutcome> {
    // UIDs are read after de-identification: the study is grouped by the UIDs that are kept (replaced
    // consistently across a study, so the grouping is the same).
    const prepared = await deps.prepare(original);
    if (prepared.status === 'quarantined') return prepared;
    const { bytes } = prepared;
    const ids = deps.readIds(bytes);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const [existing] = await db.query<{ sha256: string }>(
      `SELECT sha256 FROM dxflow_dicom_instance WHERE study_uid = $1 AND sop_instance_uid = $2`, [ids.studyInstanceUid, ids.sopInstanceUid]);
    if (existing?.sha256 === sha256) return { status: 'duplicate', ids };
    const key = `dicom/${sha256}.dcm`;
    await objects.put(key, bytes);
    await db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO dxflow_dicom_study (study_uid) VALUES ($1)
         ON CONFLICT (study_uid) DO UPDATE SET last_at = now()`, [ids.studyInstanceUid]);
      await tx.query(
        `INSERT INTO dxflow_dicom_instance (study_uid, sop_instance_uid, series_uid, sop_class_uid, modality, instance_number, sha256, object_key, bytes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (study_uid, sop_instance_uid) DO UPDATE SET sha256 = EXCLUDED.sha256, object_key = EXCLUDED.object_key,
           bytes = EXCLUDED.bytes, received_at = now()`,
        [ids.studyInstanceUid, ids.sopInstanceUid, ids.seriesInstanceUid, ids.sopClassUid, ids.modality ?? null, ids.instanceNumber ?? null, sha256, key, bytes.length]);
    });
    return { status: existing ? 'replaced' : 'stored', ids };
  }

  /**
   * Studies quiet for the quiet period become cases: the case's input is the study's first instance (by
   * series, instance number and arrival) that the pipeline accepts. A study whose instances are all
   * refused gets no case (each refusal is reported). Safe to run from several workers at once: the study
   * row is claimed in the case's transaction.
   */
  async function completeQuietStudies(): Promise<Array<{ studyUid: string; caseId: string | null; error?: { code: string; message: string } }>> {
    const studies = await db.query<{ study_uid: string }>(
      `SELECT study_uid FROM dxflow_dicom_study WHERE case_id IS NULL AND last_at <= now() - make_interval(secs => $1) ORDER BY last_at LIMIT 50`,
      [deps.quietSeconds]);
    const out: Array<{ studyUid: string; caseId: string | null; error?: { code: string; message: string } }> = [];
    for (const { study_uid: studyUid } of studies) {
      const instances = await db.query<{ object_key: string; modality: string | null }>(
        `SELECT object_key, modality FROM dxflow_dicom_instance WHERE study_uid = $1 ORDER BY series_uid, instance_number NULLS LAST, received_at`, [studyUid]);
      let made: string | null = null;
      let lastError: { code: string; message: string } | undefined;
      for (const instance of instances) {
        try {
          const { caseId } = await deps.intake.accept({
            bytes: await objects.get(instance.object_key),
            pipeline: deps.pipeline,
            metadata: { source: 'dicom', modality: instance.modality, instances: instances.length },
          }, {
            enqueue: true,
            inTransaction: async (tx, id) => {
              const claimed = await tx.query(`UPDATE dxflow_dicom_study SET case_id = $2, cased_at = now() WHERE study_uid = $1 AND case_id IS NULL RETURNING study_uid`, [studyUid, id]);
              if (claimed.length === 0) throw new AppError('INTERNAL', `Study ${studyUid} became a case elsewhere`, { details: { alreadyCased: true } });
            },
          });
          made = caseId;
          break;
        } catch (e) {
          const err = toAppError(e);
          if ((err.details as { alreadyCased?: boolean } | undefined)?.alreadyCased) break;
          lastError = { code: err.code, message: err.message };
        }
      }
      out.push({ studyUid, caseId: made, ...(made === null && lastError ? { error: lastError } : {}) });
      if (made === null && lastError) {
        // Nothing in the study can be analysed: close it, so that it is not retried for ever.
        await db.query(`UPDATE dxflow_dicom_study SET cased_at = now(), last_at = 'infinity' WHERE study_uid = $1 AND case_id IS NULL`, [studyUid]);
      }
    }
    return out;
  }

  return { store, completeQuietStudies };
}

export type DicomIngest = ReturnType<typeof createDicomIngest>;

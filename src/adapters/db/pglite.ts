import { mkdir } from 'node:fs/promises';
import { PGlite, type Results, type Transaction } from '@electric-sql/pglite';
import { AppError } from '../../core/errors.ts';
import { lockDataDir, type DataDirLock } from './data-dir-lock.ts';
import { pgliteParsers } from './row-types.ts';
import type { Row, SqlDatabase, SqlSession } from './sql-database.ts';
import { assertOutsideOwnTransaction, rolledBackCommitError, runInTransactionScope, transactionClosedError } from './transaction-scope.ts';

// PostgreSQL compiled to WebAssembly, running in this process: one connection, shared by every caller.
// PGlite already runs one statement or transaction at a time; the adapter adds its own queue in front
// so that a failed script and the ROLLBACK that cleans up after it run back to back, with nobody else's
// statement in between (see exec).

function rowsOf(results: Results[]): Row[] {
  return results.flatMap((result) => result.rows as Row[]);
}

/** Runs tasks one after another, in call order, whatever each one's outcome. */
function createSerialQueue(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task);
    tail = run.catch(() => undefined);
    return run;
  };
}

function sessionOf(tx: Transaction): SqlSession {
  const ensureOpen = (): void => {
    if (tx.closed) throw transactionClosedError();
  };
  return {
    async query<R = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
      ensureOpen();
      return (await tx.query<R>(sql, [...params])).rows;
    },
    async exec(sql: string): Promise<void> {
      ensureOpen();
      await tx.exec(sql);
    },
    async execRows<R = Row>(sql: string): Promise<R[]> {
      ensureOpen();
      return rowsOf(await tx.exec(sql)) as R[];
    },
  };
}

export interface PgliteOptions {
  /**
   * A data folder image (PGlite's dumpDataDir()) to start a new database from instead of running
   * initdb, which takes a second or more; tests start each fresh database from one image.
   */
  initialImage?: Blob;
}

/** Opens PGlite in dataDir (created if missing), or in memory when dataDir is undefined. */
export async function openPglite(dataDir: string | undefined, options: PgliteOptions = {}): Promise<SqlDatabase> {
  let lock: DataDirLock | undefined;
  if (dataDir !== undefined) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    lock = await lockDataDir(dataDir);
  }
  let pglite: PGlite;
  try {
    pglite = await PGlite.create({
      ...(dataDir === undefined ? {} : { dataDir }),
      ...(options.initialImage === undefined ? {} : { loadDataDir: options.initialImage }),
      parsers: pgliteParsers,
    });
  } catch (e) {
    await lock?.release();
    throw new AppError('INTERNAL', `Could not open the embedded database${dataDir === undefined ? '' : ` in ${dataDir}`}: ${(e as Error).message}`, { cause: e });
  }
  const serial = createSerialQueue();
  let closed = false;

  const database: SqlDatabase = {
    kind: 'pglite',

    async query<R = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
      assertOutsideOwnTransaction(database, 'query');
      return serial(async () => (await pglite.query<R>(sql, [...params])).rows);
    },

    async exec(sql: string): Promise<void> {
      await database.execRows(sql);
    },

    async execRows<R = Row>(sql: string): Promise<R[]> {
      assertOutsideOwnTransaction(database, 'exec');
      return serial(async () => {
        try {
          return rowsOf(await pglite.exec(sql)) as R[];
        } catch (e) {
          // A script that opened a transaction (BEGIN …) and failed inside it leaves the one and only
          // session in an aborted transaction, and every later statement from any caller would fail.
          // A pool would discard that connection; here it has to be rolled back. Outside a transaction
          // ROLLBACK only raises a warning.
          await pglite.exec('ROLLBACK').catch(() => undefined);
          throw e;
        }
      });
    },

    async transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T> {
      assertOutsideOwnTransaction(database, 'transaction');
      return serial(async () => {
        const body = { resolved: false };
        try {
          return await pglite.transaction(async (tx) => {
            const result = await runInTransactionScope(database, () => fn(sessionOf(tx)));
            body.resolved = true;
            return result;
          });
        } catch (e) {
          // The body succeeded and COMMIT answered ROLLBACK (PGlite reports that as 25P02): a statement
          // failed and the body caught its error. Reported the same way on PostgreSQL.
          if (body.resolved && (e as { code?: unknown }).code === '25P02') throw rolledBackCommitError(e);
          throw e;
        }
      });
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      // Queued behind every statement already issued, so close never cuts one off.
      await serial(() => pglite.close());
      await lock?.release();
    },
  };
  return database;
}

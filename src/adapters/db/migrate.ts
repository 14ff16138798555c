import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppError } from '../../core/errors.ts';
import type { SqlDatabase, SqlSession } from './sql-database.ts';

// Schema migrations: plain SQL files named NNN_name.sql, applied in number order, each in its own
// transaction together with its row in dxflow_migration, so a file is either fully applied and
// recorded or not at all. A file's sha256 is recorded when it is applied; an applied file must never
// change again (put the change in a new file), and a database migrated by a newer dxflow is refused.
// Statements that PostgreSQL cannot run inside a transaction (CREATE INDEX CONCURRENTLY, VACUUM) and
// transaction control (BEGIN, COMMIT) do not belong in a migration file.

const DEFAULT_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
const FILE_NAME = /^(\d{3})_[a-z0-9_]+\.sql$/;

// Every dxflow process sharing the database takes this transaction-scoped advisory lock before looking
// at dxflow_migration, so processes that start together apply each file once, one after another.
// The key is 'dxflow' in ASCII.
const LOCK = 'SELECT pg_advisory_xact_lock(110386486374263)';

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS dxflow_migration (
  name       text PRIMARY KEY,
  sha256     text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

interface MigrationFile {
  name: string;
  sql: string;
  sha256: string;
}

interface AppliedMigration {
  name: string;
  sha256: string;
}

function checksum(sql: string): string {
  // Line endings and a byte-order mark are not part of a migration's meaning, and a checkout with
  // Windows line endings must not look like an edited migration.
  return createHash('sha256').update(sql.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n')).digest('hex');
}

async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (e) {
    throw new AppError('INTERNAL', `Cannot read the migrations folder ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const names = entries.filter((entry) => entry.endsWith('.sql')).sort();
  const seen = new Map<string, string>();
  for (const name of names) {
    const number = FILE_NAME.exec(name)?.[1];
    if (number === undefined) {
      throw new AppError('MIGRATION_INVALID', `Migration file ${join(dir, name)} is not named NNN_name.sql (three digits, underscore, lower-case letters, digits and underscores); rename it.`);
    }
    const other = seen.get(number);
    if (other !== undefined) {
      throw new AppError('MIGRATION_INVALID', `Migration files ${other} and ${name} share the number ${number}; give the newer one the next free number.`);
    }
    seen.set(number, name);
  }
  return Promise.all(names.map(async (name) => {
    const sql = await readFile(join(dir, name), 'utf8');
    return { name, sql, sha256: checksum(sql) };
  }));
}

/** Refuses a database whose recorded migrations do not match the files, before anything is applied. */
function verify(files: readonly MigrationFile[], applied: readonly AppliedMigration[]): void {
  const byName = new Map(files.map((file) => [file.name, file]));
  for (const row of applied) {
    const file = byName.get(row.name);
    if (file === undefined) {
      throw new AppError('MIGRATION_INVALID', `The database has migration ${row.name} applied, which this version of dxflow does not have: a newer version migrated it. Run that version or a later one against this database.`);
    }
    if (file.sha256 !== row.sha256) {
      throw new AppError('MIGRATION_INVALID', `Migration ${row.name} was changed after it was applied to this database (sha256 then ${row.sha256}, now ${file.sha256}). An applied migration must not be edited: restore the file and put the change in a new migration.`);
    }
  }
  const appliedNames = new Set(applied.map((row) => row.name));
  const lastApplied = applied.map((row) => row.name).sort().at(-1);
  const skipped = files.find((file) => !appliedNames.has(file.name) && lastApplied !== undefined && file.name < lastApplied);
  if (skipped !== undefined) {
    throw new AppError('MIGRATION_INVALID', `Migration ${skipped.name} is not applied but the later ${lastApplied} is; migrations run in number order. Renumber ${skipped.name} after ${lastApplied}.`);
  }
}

async function applyOne(tx: SqlSession, file: MigrationFile): Promise<boolean> {
  await tx.query(LOCK);
  const [row] = await tx.query<AppliedMigration>('SELECT name, sha256 FROM dxflow_migration WHERE name = $1', [file.name]);
  if (row !== undefined) {
    // Another process applied it while this one waited for the lock.
    verify([file], [row]);
    return false;
  }
  try {
    await tx.exec(file.sql);
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw new AppError('MIGRATION_FAILED', `Migration ${file.name} failed and was rolled back: ${(e as Error).message}`, { cause: e });
  }
  await tx.query('INSERT INTO dxflow_migration (name, sha256) VALUES ($1, $2)', [file.name, file.sha256]);
  return true;
}

/** Applies the migration files in dir that the database has not had yet; returns their names. */
export async function migrate(db: SqlDatabase, dir: string = DEFAULT_DIR): Promise<{ applied: string[] }> {
  const files = await readMigrationFiles(dir);
  const pending = await db.transaction(async (tx) => {
    await tx.query(LOCK);
    await tx.query(CREATE_TABLE);
    const applied = await tx.query<AppliedMigration>('SELECT name, sha256 FROM dxflow_migration ORDER BY name');
    verify(files, applied);
    const done = new Set(applied.map((row) => row.name));
    return files.filter((file) => !done.has(file.name));
  });
  const applied: string[] = [];
  for (const file of pending) {
    if (await db.transaction((tx) => applyOne(tx, file))) applied.push(file.name);
  }
  return { applied };
}

import { join } from 'node:path';
import { openPglite } from './pglite.ts';
import { openPostgres } from './postgres.ts';
import type { SqlDatabase } from './sql-database.ts';

export type { Row, SqlDatabase, SqlSession } from './sql-database.ts';
export { openPglite } from './pglite.ts';
export { openPostgres, type PostgresOptions } from './postgres.ts';

export interface DatabaseConfig {
  /** postgres://… selects PostgreSQL; absent or empty selects the embedded PGlite. */
  databaseUrl?: string | undefined;
  /** The embedded database lives in `<dataDir>/db`. */
  dataDir: string;
  /** PostgreSQL only: the schema to work in (must exist). The embedded database is private already. */
  schema?: string;
}

/** PostgreSQL when a URL is configured, otherwise the embedded PGlite in `<dataDir>/db` (DESIGN.md §3). */
export async function openDatabase(config: DatabaseConfig): Promise<SqlDatabase> {
  if (config.databaseUrl !== undefined && config.databaseUrl !== '') {
    return openPostgres(config.databaseUrl, config.schema === undefined ? {} : { schema: config.schema });
  }
  return openPglite(join(config.dataDir, 'db'));
}

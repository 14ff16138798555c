import pg from 'pg';
import { AppError } from '../../core/errors.ts';
import { isLostConnection, toDatabaseError } from './connection-errors.ts';
import { postgresTypes } from './row-types.ts';
import type { Row, SqlDatabase, SqlSession } from './sql-database.ts';
import { assertOutsideOwnTransaction, rolledBackCommitError, runInTransactionScope, transactionClosedError } from './transaction-scope.ts';

// PostgreSQL through a node-postgres pool. query() uses the extended protocol, which, as on PGlite,
// accepts exactly one statement; exec() uses the simple protocol, which accepts several.

export interface PostgresOptions {
  /** Schema to work in: put first on every connection's search_path. Must already exist. */
  schema?: string;
  /** Most connections the pool opens. */
  max?: number;
  /** Told about errors on idle connections (the pool has already discarded the connection). */
  onIdleError?: (error: Error) => void;
}

// Unquoted identifiers only, so the name can go into the connection's startup options as it is.
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

type MultiResult = pg.QueryResult | pg.QueryResult[];

function rowsOf(result: MultiResult): Row[] {
  // A simple-protocol query with several statements answers with one result per statement.
  return Array.isArray(result) ? result.flatMap((r) => (r.rows ?? []) as Row[]) : (result.rows as Row[]);
}

function singleStatement(text: string, params: readonly unknown[]): pg.QueryConfig {
  // queryMode 'extended' even without parameters, so a string holding two statements is refused here
  // exactly as PGlite refuses it (node-postgres would otherwise switch to the simple protocol).
  const config: pg.QueryConfig & { queryMode: 'extended' } = { text, values: [...params], queryMode: 'extended' };
  return config;
}

/** Where the URL points, without credentials, for error messages. */
function describeTarget(url: string): string {
  try {
    const parsed = new URL(url);
    return `postgres://${parsed.host}${parsed.pathname}`;
  } catch {
    return 'the configured PostgreSQL URL';
  }
}

export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<SqlDatabase> {
  const { schema, max = 10 } = options;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new AppError('CONFIG_INVALID', `PostgreSQL schema "${schema}" is not a plain lower-case identifier (letters, digits, underscore; at most 63).`);
  }
  const target = describeTarget(url);
  const pool = new pg.Pool({
    connectionString: url,
    max,
    application_name: 'dxflow',
    connectionTimeoutMillis: 10_000,
    types: postgresTypes,
    // A startup parameter rather than a SET after connecting: the server applies it before the
    // connection runs anything, so no statement can ever see the default search_path.
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  });
  // Without a listener, an error on an idle connection (server restart, pg_terminate_backend) would
  // crash the process. The pool drops that connection and opens a new one when next needed.
  pool.on('error', (error) => options.onIdleError?.(error));

  interface CheckedOut {
    client: pg.PoolClient;
    /** Back to the pool, or closed when discard is given (the connection can no longer be trusted). */
    release(discard?: Error): void;
  }

  async function checkout(): Promise<CheckedOut> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (e) {
      throw toDatabaseError(e, target);
    }
    // A connection that breaks while checked out emits 'error', which would crash the process if
    // nobody listened. The statement in flight (or the next one) fails with the same cause.
    const ignore = (): void => undefined;
    client.on('error', ignore);
    return {
      client,
      release(discard) {
        // A discarded connection keeps the listener: its socket may still report the failure late.
        if (discard === undefined) client.off('error', ignore);
        client.release(discard);
      },
    };
  }

  /**
   * After a failure on a checked-out connection: rolls back whatever transaction the failure left
   * open, and says whether the connection must be closed instead of going back to the pool (it was
   * lost, or the ROLLBACK itself failed).
   */
  async function rollBackAfter(client: pg.PoolClient, failure: unknown): Promise<Error | undefined> {
    if (isLostConnection(failure)) return failure instanceof Error ? failure : new Error(String(failure));
    try {
      await client.query('ROLLBACK');
      return undefined;
    } catch (rollbackFailure) {
      return rollbackFailure instanceof Error ? rollbackFailure : new Error(String(rollbackFailure));
    }
  }

  function sessionOf(client: pg.PoolClient, state: { open: boolean }): SqlSession {
    const ensureOpen = (): void => {
      if (!state.open) throw transactionClosedError();
    };
    const session: SqlSession = {
      async query<R = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
        ensureOpen();
        try {
          return (await client.query(singleStatement(sql, params))).rows as R[];
        } catch (e) {
          throw toDatabaseError(e, target);
        }
      },
      async exec(sql: string): Promise<void> {
        await session.execRows(sql);
      },
      async execRows<R = Row>(sql: string): Promise<R[]> {
        ensureOpen();
        try {
          return rowsOf((await client.query(sql)) as MultiResult) as R[];
        } catch (e) {
          throw toDatabaseError(e, target);
        }
      },
    };
    return session;
  }

  let closing: Promise<void> | undefined;

  const database: SqlDatabase = {
    kind: 'postgres',

    async query<R = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
      assertOutsideOwnTransaction(database, 'query');
      try {
        return (await pool.query(singleStatement(sql, params))).rows as R[];
      } catch (e) {
        throw toDatabaseError(e, target);
      }
    },

    async exec(sql: string): Promise<void> {
      await database.execRows(sql);
    },

    async execRows<R = Row>(sql: string): Promise<R[]> {
      assertOutsideOwnTransaction(database, 'exec');
      const { client, release } = await checkout();
      let discard: Error | undefined;
      try {
        return rowsOf((await client.query(sql)) as MultiResult) as R[];
      } catch (e) {
        // A script that opened a transaction and failed inside it leaves this connection in an aborted
        // transaction; it is rolled back before the connection goes back to the pool.
        discard = await rollBackAfter(client, e);
        throw toDatabaseError(e, target);
      } finally {
        release(discard);
      }
    },

    async transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T> {
      assertOutsideOwnTransaction(database, 'transaction');
      const { client, release } = await checkout();
      const state = { open: true };
      let discard: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await runInTransactionScope(database, () => fn(sessionOf(client, state)));
        const commit = await client.query('COMMIT');
        if (commit.command === 'ROLLBACK') throw rolledBackCommitError();
        return result;
      } catch (e) {
        discard = await rollBackAfter(client, e);
        throw toDatabaseError(e, target);
      } finally {
        state.open = false;
        release(discard);
      }
    },

    close(): Promise<void> {
      closing ??= pool.end();
      return closing;
    },
  };

  // Fail at start, with a clear message, rather than on the first request.
  try {
    const [row] = await database.query<{ schema: string | null }>('SELECT current_schema() AS schema');
    if (schema !== undefined && row?.schema !== schema) {
      throw new AppError('CONFIG_INVALID', `PostgreSQL schema "${schema}" does not exist in ${target}; create it (CREATE SCHEMA ${schema}) or leave the schema unset.`);
    }
  } catch (e) {
    await database.close();
    throw e;
  }
  return database;
}

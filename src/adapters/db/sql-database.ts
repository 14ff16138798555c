import type { Database, SqlExecutor } from '../../core/ports.ts';

// What the database adapters give the composition roots: the Database port plus the ability to run
// parameterless multi-statement SQL and read its rows, both on the database and inside a transaction.
// Migrations need that inside a transaction, and pg-boss needs the rows of its own BEGIN … COMMIT
// blocks. PGlite and PostgreSQL implement it identically, so code above this line has one path.

export type Row = Record<string, unknown>;

/** A database or an open transaction. */
export interface SqlSession extends SqlExecutor {
  /** Runs parameterless SQL that may hold several statements (the simple-query protocol). */
  exec(sql: string): Promise<void>;
  /** Like exec, and returns the rows of every statement, in order. */
  execRows<R = Row>(sql: string): Promise<R[]>;
}

export interface SqlDatabase extends Database, SqlSession {
  /**
   * Runs fn inside one transaction on one connection; commits when it resolves, rolls back when it
   * throws. Using the database itself (rather than tx) inside fn is refused: PGlite has a single
   * connection, so such a call could only wait forever for the transaction that is waiting for it.
   */
  transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T>;
}

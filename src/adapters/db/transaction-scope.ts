import { AsyncLocalStorage } from 'node:async_hooks';
import { AppError } from '../../core/errors.ts';

// Transaction rules shared by both adapters, with the errors that enforce them.
//
// Remembers, along the async call chain, which databases have a transaction open. PGlite is a single
// connection: a query sent to the database while one of its transactions is open waits for that
// transaction to end, so a call made from inside the transaction's own callback can never finish.
// Rather than hang, such a call fails at once — on PostgreSQL too, where it would silently run outside
// the transaction on another connection, so the mistake shows up in tests on either engine.

interface OpenTransaction {
  readonly database: object;
  /** Cleared when the transaction ends: work scheduled inside it but run later is outside it. */
  open: boolean;
}

const openTransactions = new AsyncLocalStorage<readonly OpenTransaction[]>();

export async function runInTransactionScope<T>(database: object, fn: () => Promise<T>): Promise<T> {
  const entry: OpenTransaction = { database, open: true };
  try {
    return await openTransactions.run([...(openTransactions.getStore() ?? []), entry], fn);
  } finally {
    entry.open = false;
  }
}

export function assertOutsideOwnTransaction(database: object, operation: string): void {
  const inside = openTransactions.getStore()?.some((entry) => entry.database === database && entry.open) ?? false;
  if (inside) {
    throw new AppError(
      'INTERNAL',
      `database.${operation}() was called inside one of the same database's transactions; use the transaction's own executor (the tx argument) instead — on the embedded database this call would wait forever for the transaction to end`,
    );
  }
}

/**
 * COMMIT of a transaction in which a statement failed rolls it back instead (PostgreSQL answers with
 * the command tag ROLLBACK). That happens when the transaction body catches a statement's error and
 * carries on; nothing it wrote was kept.
 */
export function rolledBackCommitError(cause?: unknown): AppError {
  return new AppError(
    'INTERNAL',
    'The transaction was rolled back instead of committed: a statement inside it failed and its error was caught inside the transaction. Let the error propagate, or use a SAVEPOINT to recover from it.',
    cause === undefined ? {} : { cause },
  );
}

export function transactionClosedError(): AppError {
  return new AppError('INTERNAL', 'The transaction is closed: its executor (tx) was used after the transaction ended.');
}

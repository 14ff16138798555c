import type { Readable } from 'node:stream';

// Ports: the small interfaces the inner layers use; adapters/ implements them (DESIGN.md §2).
// Types only — no I/O happens here.

/** Anything that runs one SQL statement with $1-style parameters: a pool, a client, a transaction. */
export interface SqlExecutor {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
}

export interface Database extends SqlExecutor {
  readonly kind: 'pglite' | 'postgres';
  /** Runs parameterless SQL that may hold several statements (migrations). */
  exec(sql: string): Promise<void>;
  /** Runs fn inside one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface StoredObject {
  key: string;
  sha256: string;
  bytes: number;
}

export interface ObjectStore {
  /** Stores bytes under key. Writing the same key twice with the same bytes is a no-op. */
  put(key: string, data: Buffer): Promise<StoredObject>;
  /**
   * Stores a stream without holding it in memory (uploads of whole slides). More than maxBytes →
   * FILE_TOO_LARGE, and nothing is stored; the object appears whole or not at all.
   */
  putStream(key: string, source: AsyncIterable<Uint8Array>, options: { maxBytes: number }): Promise<StoredObject>;
  get(key: string): Promise<Buffer>;
  /** Reads bytes [start, end) without loading the whole object. */
  getRange(key: string, start: number, end: number): Promise<Buffer>;
  stream(key: string): Readable;
  head(key: string): Promise<{ bytes: number } | undefined>;
  delete(key: string): Promise<void>;
}

export interface Job {
  id: string;
  data: Record<string, unknown>;
  /** True on the job's last allowed attempt: a failure now is final, not retried. */
  lastAttempt: boolean;
}

export interface JobQueue {
  /** Enqueues a job; with tx, inside the caller's transaction so it exists only if the caller commits. */
  send(queue: string, data: Record<string, unknown>, options?: { tx?: SqlExecutor; singletonKey?: string; retryLimit?: number }): Promise<string | null>;
  /**
   * Enqueues many jobs in one statement (with tx, inside the caller's transaction). On a queue declared
   * exclusive, a job whose singletonKey is already queued or running is skipped.
   */
  sendMany(queue: string, jobs: readonly { data: Record<string, unknown>; singletonKey?: string }[], options?: { tx?: SqlExecutor }): Promise<void>;
  work(queue: string, options: { concurrency: number }, handler: (job: Job) => Promise<void>): Promise<void>;
  /**
   * Embedded start only, when no other process can be working: jobs a dead process left active are
   * failed now (to be retried), instead of when their heartbeat or expiry lapses. Returns how many.
   */
  releaseActive(queue: string): Promise<number>;
  /**
   * Wakes this process's idle workers of the queue, so that a job just committed (after the sending
   * transaction) starts now rather than at their next poll.
   */
  wake(queue: string): void;
  stop(): Promise<void>;
}

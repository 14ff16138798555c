import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { openPglite } from '../../src/adapters/db/pglite.ts';
import { openPostgres } from '../../src/adapters/db/postgres.ts';
import type { SqlDatabase } from '../../src/adapters/db/sql-database.ts';

// The databases every adapter test runs against: always an in-memory PGlite, plus PostgreSQL when
// DXFLOW_TEST_DATABASE_URL is set (postgres://user@host:port/database). On PostgreSQL each test gets
// a fresh schema of its own, dropped after the test when it passes and kept when it fails so its
// tables can be inspected (the schema name is printed as a test diagnostic).
//
//   for (const factory of testDatabases()) {
//     test(`does something (${factory.kind})`, async (t) => {
//       const { db } = await factory.open(t);
//       …
//     });
//   }

export interface TestDatabase {
  db: SqlDatabase;
  /** A schema no other test uses, for state kept outside `db`'s tables (e.g. pg-boss's). */
  schema: string;
}

export interface TestDatabaseFactory {
  readonly kind: 'pglite' | 'postgres';
  /** Opens an empty database for this test; it is closed after the test. */
  open(t: TestContext): Promise<TestDatabase>;
}

export const postgresTestUrl: string | undefined = process.env.DXFLOW_TEST_DATABASE_URL || undefined;

// node:test sets `passed` on the context by the time its after hooks run; @types/node does not list it.
function testPassed(t: TestContext): boolean {
  return (t as TestContext & { readonly passed?: boolean }).passed === true;
}

async function withAdminClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function dropSchemaIfPassed(t: TestContext, url: string, schema: string): Promise<void> {
  if (testPassed(t)) {
    await withAdminClient(url, (client) => client.query(`DROP SCHEMA ${schema} CASCADE`));
  } else {
    t.diagnostic(`kept PostgreSQL schema ${schema} of the failed test for inspection`);
  }
}

async function createSchema(url: string): Promise<string> {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  await withAdminClient(url, (client) => client.query(`CREATE SCHEMA ${schema}`));
  return schema;
}

/**
 * PostgreSQL only: creates a schema private to this test, dropped after the test if it passed, for
 * tests that open several pools on one schema. Close those pools inside the test: after hooks run in
 * the order they were added, so this one runs before any the test adds later.
 */
export async function createTestSchema(t: TestContext, url: string): Promise<string> {
  const schema = await createSchema(url);
  t.after(() => dropSchemaIfPassed(t, url, schema));
  return schema;
}

// initdb once per test process; every test's database starts from a copy of the empty data folder.
let emptyImage: Promise<Blob> | undefined;

function emptyPgliteImage(): Promise<Blob> {
  emptyImage ??= (async () => {
    const template = await PGlite.create();
    try {
      return await template.dumpDataDir('none');
    } finally {
      await template.close();
    }
  })();
  return emptyImage;
}

const pglite: TestDatabaseFactory = {
  kind: 'pglite',
  async open(t) {
    const db = await openPglite(undefined, { initialImage: await emptyPgliteImage() });
    t.after(() => db.close());
    return { db, schema: 'public' };
  },
};

function postgres(url: string): TestDatabaseFactory {
  return {
    kind: 'postgres',
    async open(t) {
      const schema = await createSchema(url);
      const db = await openPostgres(url, { schema, max: 4 });
      t.after(async () => {
        await db.close();
        await dropSchemaIfPassed(t, url, schema);
      });
      return { db, schema };
    },
  };
}

export function testDatabases(): TestDatabaseFactory[] {
  return postgresTestUrl === undefined ? [pglite] : [pglite, postgres(postgresTestUrl)];
}

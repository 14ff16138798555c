import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { openDatabase } from '../../src/adapters/db/database.ts';
import { openPglite } from '../../src/adapters/db/pglite.ts';
import { openPostgres } from '../../src/adapters/db/postgres.ts';
import { postgresTestUrl, testDatabases } from '../support/db.ts';

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves to 'pending' when promise has not settled within ms. */
async function stateAfter(promise: Promise<unknown>, ms: number): Promise<'settled' | 'pending'> {
  return Promise.race([promise.then(() => 'settled' as const, () => 'settled' as const), delay(ms).then(() => 'pending' as const)]);
}

for (const factory of testDatabases()) {
  const on = `(${factory.kind})`;

  test(`query binds parameters and returns rows; exec runs several statements ${on}`, async (t) => {
    const { db } = await factory.open(t);
    assert.equal(db.kind, factory.kind);
    await db.exec('CREATE TABLE note (id integer PRIMARY KEY, body text NOT NULL); INSERT INTO note VALUES (1, $$one$$);');
    await db.query('INSERT INTO note (id, body) VALUES ($1, $2)', [2, 'two']);
    assert.deepEqual(await db.query('SELECT id, body FROM note ORDER BY id'), [{ id: 1, body: 'one' }, { id: 2, body: 'two' }]);
    assert.deepEqual(await db.execRows('SELECT 1 AS a; SELECT 2 AS b'), [{ a: 1 }, { b: 2 }]);
  });

  test(`query refuses two statements in one string, on both engines ${on}`, async (t) => {
    const { db } = await factory.open(t);
    await assert.rejects(db.query('SELECT 1; SELECT 2'), /multiple commands/);
  });

  test(`column values come back as the same JavaScript values on both engines ${on}`, async (t) => {
    const { db } = await factory.open(t);
    const [row] = await db.query(`SELECT 42::int8 AS small_int8, 9007199254740993::int8 AS big_int8, ARRAY[1, NULL, 3]::int8[] AS int8s,
      count(*) AS n, 1.5::numeric AS num, 2.5::float8 AS f8, '\\x0102ff'::bytea AS bytes, '2024-02-29'::date AS day,
      ARRAY['2024-01-01'::date] AS days, '1 day 02:00:00'::interval AS span, '{"a":[1,2]}'::jsonb AS doc,
      '2024-01-02T03:04:05.678Z'::timestamptz AS at, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id
      FROM (VALUES (1)) AS v`);
    assert.deepEqual(row, {
      small_int8: 42,
      big_int8: 9007199254740993n,
      int8s: [1, null, 3],
      n: 1,
      num: '1.5',
      f8: 2.5,
      bytes: Buffer.from([1, 2, 255]),
      day: '2024-02-29',
      days: ['2024-01-01'],
      span: '1 day 02:00:00',
      doc: { a: [1, 2] },
      at: new Date('2024-01-02T03:04:05.678Z'),
      id: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    });
    assert.ok(Buffer.isBuffer(row?.['bytes']));
    const [echo] = await db.query<{ bytes: Buffer }>('SELECT $1::bytea AS bytes', [Buffer.from('hi')]);
    assert.deepEqual(echo?.bytes, Buffer.from('hi'));
  });

  test(`a transaction commits when its body resolves ${on}`, async (t) => {
    const { db } = await factory.open(t);
    await db.exec('CREATE TABLE item (id integer PRIMARY KEY)');
    const result = await db.transaction(async (tx) => {
      await tx.query('INSERT INTO item VALUES ($1)', [1]);
      await tx.exec('INSERT INTO item VALUES (2); INSERT INTO item VALUES (3);');
      return (await tx.query<{ n: number }>('SELECT count(*) AS n FROM item'))[0]?.n;
    });
    assert.equal(result, 3);
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM item'), [{ n: 3 }]);
  });

  test(`a transaction whose body throws leaves nothing behind ${on}`, async (t) => {
    const { db } = await factory.open(t);
    await db.exec('CREATE TABLE item (id integer PRIMARY KEY)');
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO item VALUES (1)');
        await tx.exec('INSERT INTO item VALUES (2)');
        throw new Error('body failed');
      }),
      /body failed/,
    );
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM item'), [{ n: 0 }]);
    // The connection is usable afterwards.
    await db.transaction((tx) => tx.query('INSERT INTO item VALUES (1)'));
    assert.deepEqual(await db.query('SELECT id FROM item'), [{ id: 1 }]);
  });

  test(`a failed statement inside a transaction rolls all of it back ${on}`, async (t) => {
    const { db } = await factory.open(t);
    await db.exec('CREATE TABLE item (id integer PRIMARY KEY)');
    await assert.rejects(db.transaction(async (tx) => {
      await tx.query('INSERT INTO item VALUES (1)');
      await tx.query('INSERT INTO item VALUES (1)');
    }), (e: unknown) => (e as { code?: string }).code === '23505');
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM item'), [{ n: 0 }]);
  });

  test(`a body that swallows a statement's error gets a rolled-back commit reported, not silence ${on}`, async (t) => {
    const { db } = await factory.open(t);
    await db.exec('CREATE TABLE item (id integer PRIMARY KEY)');
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO item VALUES (1)');
        await tx.query('INSERT INTO item VALUES (1)').catch(() => undefined);
      }),
      (e: unknown) => e instanceof AppError && /rolled back instead of committed/.test(e.message),
    );
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM item'), [{ n: 0 }]);
  });

  test(`a query issued while a transaction is open waits for it instead of joining it ${on}`, async (t) => {
    const { db } = await factory.open(t);
    await db.exec('CREATE TABLE item (id integer PRIMARY KEY)');
    // The outside query is chained before the transaction starts, so it runs in the test's own async
    // context as another request would, not in the transaction's; it is released from inside.
    let release = (): void => undefined;
    const outside = new Promise<void>((resolve) => (release = resolve)).then(() => db.query('SELECT id FROM item'));
    await assert.rejects(db.transaction(async (tx) => {
      await tx.query('INSERT INTO item VALUES (1)');
      release();
      await delay(50);
      if (factory.kind === 'pglite') {
        // One connection: the outside query is queued behind the whole transaction.
        assert.equal(await stateAfter(outside, 50), 'pending');
      }
      throw new Error('roll back');
    }), /roll back/);
    // Had it joined the transaction it would have seen the row that was rolled back.
    assert.deepEqual(await outside, []);
  });

  test(`using the database itself inside its own transaction fails at once instead of hanging ${on}`, async (t) => {
    const { db } = await factory.open(t);
    await db.exec('CREATE TABLE item (id integer PRIMARY KEY)');
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO item VALUES (1)');
        await db.query('SELECT 1');
      }),
      (e: unknown) => e instanceof AppError && e.code === 'INTERNAL' && /use the transaction's own executor/.test(e.message),
    );
    await assert.rejects(db.transaction(() => db.transaction(async () => undefined)), /inside one of the same database's transactions/);
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM item'), [{ n: 0 }]);
  });

  test(`the transaction executor refuses to run after its transaction ended ${on}`, async (t) => {
    const { db } = await factory.open(t);
    const leaked = await db.transaction(async (tx) => tx);
    await assert.rejects(leaked.query('SELECT 1'), (e: unknown) => e instanceof AppError && /transaction is closed/.test(e.message));
    await assert.rejects(leaked.exec('SELECT 1'), /transaction is closed/);
  });

  test(`a failed script that opened its own transaction does not poison the connection ${on}`, async (t) => {
    const { db } = await factory.open(t);
    await db.exec('CREATE TABLE item (id integer PRIMARY KEY)');
    await assert.rejects(db.exec('BEGIN; INSERT INTO item VALUES (1); SELECT 1/0; COMMIT;'), /division by zero/);
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM item'), [{ n: 0 }]);
    await db.transaction((tx) => tx.query('INSERT INTO item VALUES (2)'));
    assert.deepEqual(await db.query('SELECT id FROM item'), [{ id: 2 }]);
  });

  test(`concurrent transactions each commit their own rows ${on}`, async (t) => {
    const { db } = await factory.open(t);
    await db.exec('CREATE TABLE item (id integer PRIMARY KEY, batch integer NOT NULL)');
    await Promise.all([1, 2, 3, 4].map((batch) => db.transaction(async (tx) => {
      for (let i = 0; i < 5; i++) {
        await tx.query('INSERT INTO item VALUES ($1, $2)', [batch * 100 + i, batch]);
        await delay(1);
      }
    })));
    assert.deepEqual(await db.query('SELECT batch, count(*) AS n FROM item GROUP BY batch ORDER BY batch'), [1, 2, 3, 4].map((batch) => ({ batch, n: 5 })));
  });
}

test('PGlite in a data folder keeps its data across restarts and refuses a second process', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'dxflow-db-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const first = await openDatabase({ dataDir });
  assert.equal(first.kind, 'pglite');
  await first.exec('CREATE TABLE kept (id integer)');
  await first.query('INSERT INTO kept VALUES (7)');
  // A second opener of the same folder while the first is open: simulated with a lock owned by a
  // live process other than this one (the parent of this test process).
  await first.close();

  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(dataDir, 'db', 'dxflow.lock'), `${process.ppid}\n`);
  await assert.rejects(openDatabase({ dataDir }), (e: unknown) => e instanceof AppError && e.code === 'CONFIG_INVALID' && /in use by process/.test(e.message));

  // A lock left by a process that no longer exists is taken over.
  await writeFile(join(dataDir, 'db', 'dxflow.lock'), '2147483646\n');
  const second = await openDatabase({ dataDir });
  t.after(() => second.close());
  assert.deepEqual(await second.query('SELECT id FROM kept'), [{ id: 7 }]);
});

test('an in-memory PGlite opens without a folder', async () => {
  const db = await openPglite(undefined);
  try {
    assert.deepEqual(await db.query('SELECT 1 AS one'), [{ one: 1 }]);
  } finally {
    await db.close();
  }
  await db.close(); // closing twice is harmless
});

test('an unreachable PostgreSQL is reported as DATABASE_UNAVAILABLE, retryable, without credentials', async () => {
  // Port 1 on the loopback interface: nothing listens there, the connection is refused at once.
  await assert.rejects(openPostgres('postgres://dxflow:secret@127.0.0.1:1/dxflow'), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, 'DATABASE_UNAVAILABLE');
    assert.equal(e.retryable, true);
    assert.match(e.message, /127\.0\.0\.1:1\/dxflow/);
    assert.doesNotMatch(e.message, /secret/);
    return true;
  });
});

test('a schema that is not a plain identifier is refused before connecting', async () => {
  await assert.rejects(openPostgres('postgres://127.0.0.1:1/x', { schema: 'a; DROP TABLE x' }), (e: unknown) => e instanceof AppError && e.code === 'CONFIG_INVALID');
});

test('PostgreSQL: a schema that does not exist is refused at open', { skip: postgresTestUrl === undefined ? 'DXFLOW_TEST_DATABASE_URL is not set' : false }, async () => {
  await assert.rejects(openPostgres(postgresTestUrl ?? '', { schema: 'no_such_schema_dxflow' }), (e: unknown) => e instanceof AppError && e.code === 'CONFIG_INVALID' && /does not exist/.test(e.message));
});

test('PostgreSQL: a connection terminated by the server surfaces as DATABASE_UNAVAILABLE and the pool recovers', { skip: postgresTestUrl === undefined ? 'DXFLOW_TEST_DATABASE_URL is not set' : false }, async (t) => {
  const [factory] = testDatabases().filter((f) => f.kind === 'postgres');
  assert.ok(factory);
  const { db } = await factory.open(t);
  const failure = db.transaction(async (tx) => {
    const [me] = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    // Another connection ends this one, as an administrator or a failover would (SQLSTATE 57P01).
    const killer = await openPostgres(postgresTestUrl ?? '');
    try {
      await killer.query('SELECT pg_terminate_backend($1)', [me?.pid]);
    } finally {
      await killer.close();
    }
    await tx.query('SELECT 1');
  });
  await assert.rejects(failure, (e: unknown) => e instanceof AppError && e.code === 'DATABASE_UNAVAILABLE' && e.retryable);
  assert.deepEqual(await db.query('SELECT 1 AS one'), [{ one: 1 }]);
});

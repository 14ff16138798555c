import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { test, type TestContext } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { createFolderStore } from '../../src/adapters/objects/folder.ts';

async function tempRoot(t: TestContext): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'dxflow-objects-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  return root;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function isCode(code: string, pattern?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => e instanceof AppError && e.code === code && (pattern === undefined || pattern.test(e.message));
}

/** Every file under dir, relative, including hidden ones. */
async function filesUnder(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
}

test('put stores the bytes under the key and returns their sha256 and size; get returns them', async (t) => {
  const root = await tempRoot(t);
  const store = createFolderStore(root);
  const data = randomBytes(100_000);
  const stored = await store.put('cases/case-1/input', data);
  assert.deepEqual(stored, { key: 'cases/case-1/input', sha256: sha256(data), bytes: 100_000 });
  assert.deepEqual(await store.get('cases/case-1/input'), data);
  assert.deepEqual(await readFile(join(root, 'cases', 'case-1', 'input')), data);
  assert.deepEqual(await store.head('cases/case-1/input'), { bytes: 100_000 });
  // No temporary file is left beside it, and only its owner may read it.
  assert.deepEqual(await filesUnder(root), ['cases/case-1/input']);
  assert.equal((await stat(join(root, 'cases', 'case-1', 'input'))).mode & 0o777, 0o600);
});

test('an empty object is an object', async (t) => {
  const store = createFolderStore(await tempRoot(t));
  const stored = await store.put('empty', Buffer.alloc(0));
  assert.equal(stored.sha256, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.deepEqual(await store.get('empty'), Buffer.alloc(0));
  assert.deepEqual(await store.head('empty'), { bytes: 0 });
});

test('putting the same bytes again leaves the stored file untouched; different bytes replace it whole', async (t) => {
  const root = await tempRoot(t);
  const store = createFolderStore(root);
  const path = join(root, 'cases', 'c', 'input');
  await store.put('cases/c/input', Buffer.from('first version'));
  const before = await stat(path);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(await store.put('cases/c/input', Buffer.from('first version')), { key: 'cases/c/input', sha256: sha256(Buffer.from('first version')), bytes: 13 });
  const after = await stat(path);
  assert.equal(after.ino, before.ino, 'same file, not rewritten');
  assert.equal(after.mtimeMs, before.mtimeMs);

  // Same length, different bytes: must not be mistaken for the same object.
  await store.put('cases/c/input', Buffer.from('other version'));
  assert.equal((await store.get('cases/c/input')).toString(), 'other version');
  await store.put('cases/c/input', Buffer.from('short'));
  assert.equal((await store.get('cases/c/input')).toString(), 'short');
  assert.deepEqual(await filesUnder(root), ['cases/c/input']);
});

test('a reader never sees part of an object while it is being replaced', async (t) => {
  const root = await tempRoot(t);
  const store = createFolderStore(root);
  const versions = [Buffer.alloc(2_000_000, 'a'), Buffer.alloc(3_000_000, 'b')];
  await store.put('slide', versions[0] as Buffer);
  const hashes = new Set(versions.map(sha256));
  const writes = (async () => {
    for (let i = 1; i <= 10; i++) await store.put('slide', versions[i % 2] as Buffer);
  })();
  let reads = 0;
  let writing = true;
  void writes.finally(() => (writing = false));
  while (writing || reads === 0) {
    assert.ok(hashes.has(sha256(await store.get('slide'))), 'each read is one whole version');
    reads++;
  }
  await writes;
  assert.ok(reads > 0);
  assert.deepEqual(await filesUnder(root), ['slide']);
});

test('getRange reads only [start, end), clamped at the end of the object', async (t) => {
  const store = createFolderStore(await tempRoot(t));
  const data = randomBytes(70_000);
  await store.put('slides/s1.svs', data);
  assert.deepEqual(await store.getRange('slides/s1.svs', 0, 8), data.subarray(0, 8));
  assert.deepEqual(await store.getRange('slides/s1.svs', 65_530, 65_540), data.subarray(65_530, 65_540));
  assert.deepEqual(await store.getRange('slides/s1.svs', 10, 10), Buffer.alloc(0));
  assert.deepEqual(await store.getRange('slides/s1.svs', 69_990, 80_000), data.subarray(69_990));
  assert.deepEqual(await store.getRange('slides/s1.svs', 70_000, 70_010), Buffer.alloc(0));
  await assert.rejects(store.getRange('slides/s1.svs', 70_001, 70_010), isCode('INVALID_REQUEST', /past the end/));
  await assert.rejects(store.getRange('slides/s1.svs', 5, 4), isCode('INVALID_REQUEST'));
  await assert.rejects(store.getRange('slides/s1.svs', -1, 4), isCode('INVALID_REQUEST'));
  await assert.rejects(store.getRange('slides/s1.svs', 0.5, 4), isCode('INVALID_REQUEST'));
});

test('stream yields the whole object; a missing object errors the stream', async (t) => {
  const store = createFolderStore(await tempRoot(t));
  const data = randomBytes(300_000);
  await store.put('a/b', data);
  assert.deepEqual(await buffer(store.stream('a/b')), data);
  await assert.rejects(buffer(store.stream('a/missing')), isCode('OBJECT_NOT_FOUND', /object a\/missing not found/));
});

test('a missing object: get and getRange throw "not found", head is undefined, delete does nothing', async (t) => {
  const store = createFolderStore(await tempRoot(t));
  await assert.rejects(store.get('cases/none/input'), isCode('OBJECT_NOT_FOUND', /object cases\/none\/input not found/));
  await assert.rejects(store.getRange('cases/none/input', 0, 1), isCode('OBJECT_NOT_FOUND', /not found/));
  assert.equal(await store.head('cases/none/input'), undefined);
  await store.delete('cases/none/input');
  await store.put('cases/x/input', Buffer.from('x'));
  // A key that is only a folder of other objects is not an object.
  await assert.rejects(store.get('cases/x'), isCode('OBJECT_NOT_FOUND', /not found/));
  assert.equal(await store.head('cases/x'), undefined);
});

test('delete removes the object', async (t) => {
  const store = createFolderStore(await tempRoot(t));
  await store.put('cases/c/heatmap.png', Buffer.from('png'));
  await store.delete('cases/c/heatmap.png');
  assert.equal(await store.head('cases/c/heatmap.png'), undefined);
  await assert.rejects(store.get('cases/c/heatmap.png'), isCode('OBJECT_NOT_FOUND', /not found/));
});

test('keys that could leave the store or are not plain paths are refused before touching the disk', async (t) => {
  const root = await tempRoot(t);
  const store = createFolderStore(join(root, 'store'));
  await writeFile(join(root, 'secret'), 'outside the store');
  const bad = ['../secret', 'cases/../../secret', '/etc/passwd', 'cases//input', 'cases/./input', '.hidden', 'cases/.tmp', '', 'cases/', 'a\\b', 'a b', 'case\u00e9', 'a\0b', 'x'.repeat(1025)];
  for (const key of bad) {
    await assert.rejects(store.put(key, Buffer.from('x')), isCode('INVALID_REQUEST', /is not valid/), `put ${JSON.stringify(key)}`);
    await assert.rejects(store.get(key), isCode('INVALID_REQUEST'), `get ${JSON.stringify(key)}`);
    await assert.rejects(store.getRange(key, 0, 1), isCode('INVALID_REQUEST'));
    await assert.rejects(store.head(key), isCode('INVALID_REQUEST'));
    await assert.rejects(store.delete(key), isCode('INVALID_REQUEST'));
    assert.throws(() => store.stream(key), isCode('INVALID_REQUEST'));
  }
  assert.equal(await readFile(join(root, 'secret'), 'utf8'), 'outside the store');
  assert.deepEqual(await filesUnder(root), ['secret']);
  // Dots inside a segment are fine.
  await store.put('cases/c1/tile.0.0.jpg', Buffer.from('ok'));
});

test('one key cannot be both an object and a folder of objects', async (t) => {
  const store = createFolderStore(await tempRoot(t));
  await store.put('cases/c', Buffer.from('object'));
  await assert.rejects(store.put('cases/c/input', Buffer.from('x')), isCode('INVALID_REQUEST', /clashes/));
  await store.put('slides/s/level-0', Buffer.from('x'));
  await assert.rejects(store.put('slides/s', Buffer.from('x')), isCode('INVALID_REQUEST', /clashes/));
  assert.equal((await store.get('cases/c')).toString(), 'object');
});

import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { build } from '../../src/api/app.ts';
import { startFolderWatcher } from '../../src/worker/watch-folder.ts';
import { platformTargets, TEST_API_KEY } from '../support/platform.ts';

const auth = { authorization: `Bearer ${TEST_API_KEY}` };
const silent = { info() {}, warn() {}, error() {} };

/** An S3 notification as AWS sends it (keys URL-encoded, '+' for spaces). */
function s3Event(bucket: string, key: string, extra: { versionId?: string; eTag?: string; eventName?: string; userMetadata?: Record<string, string> } = {}) {
  return {
    Records: [{
      eventVersion: '2.1', eventSource: 'aws:s3', awsRegion: 'eu-west-1', eventTime: '2026-11-22T08:00:00.000Z',
      eventName: extra.eventName ?? 'ObjectCreated:Put',
      s3: {
        s3SchemaVersion: '1.0', configurationId: 'dxflow',
        bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
        object: {
          key: encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/g, '/'), size: 1234,
          eTag: extra.eTag ?? 'd41d8cd98f00b204e9800998ecf8427e', ...(extra.versionId ? { versionId: extra.versionId } : {}),
          sequencer: '0055AED6DCD90281E5', ...(extra.userMetadata ? { userMetadata: extra.userMetadata } : {}),
        },
      },
    }],
  };
}

for (const target of platformTargets()) {
  test(`[${target.name}] POST /v1/events/s3: a new object becomes one case; replays, concurrent deliveries and other events make none`, async (t) => {
    const inbox = await mkdtemp(path.join(tmpdir(), 'dxflow-inbox-'));
    t.after(() => rm(inbox, { recursive: true, force: true }));
    await mkdir(path.join(inbox, 'clinic-photos', 'visits 2026'), { recursive: true });
    await cp('samples/tissue-tumour-like.png', path.join(inbox, 'clinic-photos', 'visits 2026', 'photo 1.png'));
    await writeFile(path.join(inbox, 'clinic-photos', 'note.txt'), 'not an image');
    const { platform } = await target.open(t, { DXFLOW_EVENTS_INBOX_DIR: inbox, DXFLOW_EVENTS_PIPELINE: 'image-classify' });
    const app = await build(platform);
    t.after(() => app.close());
    const post = (body: unknown) => app.inject({ method: 'POST', url: '/v1/events/s3', payload: body as object, headers: auth });

    const event = s3Event('clinic-photos', 'visits 2026/photo 1.png', { versionId: 'v1', userMetadata: { 'X-Amz-Meta-Distribution': 'localized' } });
    const first = await post(event);
    assert.equal(first.statusCode, 202, first.body);
    const [outcome] = (first.json() as { cases: Array<{ caseId: string; duplicate: boolean }> }).cases;
    assert.ok(outcome?.caseId && !outcome.duplicate);
    // The metadata sent with the object is kept for routing; the key is not part of the case.
    const [row] = await platform.db.query<{ metadata: Record<string, string>; pipeline: string }>('SELECT metadata, pipeline FROM dxflow_case WHERE id = $1', [outcome.caseId]);
    assert.deepEqual(row, { metadata: { distribution: 'localized', source: 's3' }, pipeline: 'image-classify' });

    // A replay, and five concurrent deliveries of it: no new case, the same case id.
    const again = (await post(event)).json() as { cases: Array<{ caseId: string; duplicate: boolean }> };
    assert.deepEqual(again.cases.map((c) => [c.caseId, c.duplicate]), [[outcome.caseId, true]]);
    const burst = await Promise.all(Array.from({ length: 5 }, () => post(event)));
    assert.ok(burst.every((r) => r.statusCode === 202 && (r.json() as { cases: Array<{ caseId: string }> }).cases[0]?.caseId === outcome.caseId));
    // A new version of the same key is a new upload.
    const v2 = (await post(s3Event('clinic-photos', 'visits 2026/photo 1.png', { versionId: 'v2' }))).json() as { cases: Array<{ caseId: string; duplicate: boolean }> };
    assert.ok(v2.cases[0]?.caseId && v2.cases[0].caseId !== outcome.caseId && !v2.cases[0].duplicate);
    // Deletions and test events are ignored.
    assert.deepEqual((await post(s3Event('clinic-photos', 'x.png', { eventName: 'ObjectRemoved:Delete' }))).json(), { cases: [] });
    const [count] = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dxflow_case');
    assert.equal(count?.n, 2);

    // Refused objects: reported per record with their code, no case, nothing stored.
    const refused = (await post({ Records: [...s3Event('clinic-photos', 'note.txt', { versionId: 'n1' }).Records, ...s3Event('clinic-photos', 'gone.png', { versionId: 'g1' }).Records] })).json() as { cases: Array<{ error?: { code: string }; caseId: string | null }> };
    assert.deepEqual(refused.cases.map((c) => [c.caseId, c.error?.code]), [[null, 'UNSUPPORTED_MEDIA_TYPE'], [null, 'OBJECT_NOT_FOUND']]);
    const [after] = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dxflow_case');
    assert.equal(after?.n, 2);
    // Not a notification at all.
    const bad = await post({ hello: 'world' });
    assert.equal(bad.statusCode, 400);
    assert.equal((bad.json() as { error: { code: string } }).error.code, 'INVALID_REQUEST');
    // A key that climbs out of the inbox is refused.
    const escape = (await post(s3Event('clinic-photos', '../../etc/passwd', { versionId: 'e1' }))).json() as { cases: Array<{ error?: { code: string } }> };
    assert.equal(escape.cases[0]?.error?.code, 'INVALID_REQUEST');
    // Without the API key: 401.
    assert.equal((await app.inject({ method: 'POST', url: '/v1/events/s3', payload: event })).statusCode, 401);
  });

  test(`[${target.name}] the watched folder: a file becomes one case once it is stable; rescans make none; a new version makes one`, async (t) => {
    const watch = await mkdtemp(path.join(tmpdir(), 'dxflow-watch-'));
    t.after(() => rm(watch, { recursive: true, force: true }));
    const { platform } = await target.open(t, { DXFLOW_EVENTS_PIPELINE: 'image-classify' });
    const watcher = startFolderWatcher(watch, platform.events, { intervalMs: 60_000, log: silent });
    t.after(() => watcher.stop());
    const cases = async () => (await platform.db.query<{ id: string; metadata: Record<string, string> }>('SELECT id, metadata FROM dxflow_case ORDER BY created_at'));

    await mkdir(path.join(watch, 'ward 3'));
    const file = path.join(watch, 'ward 3', 'lesion.png');
    await cp('samples/tissue-benign-like.png', file);
    await writeFile(`${file}.json`, JSON.stringify({ distribution: 'widespread' }));
    await watcher.scan();
    assert.equal((await cases()).length, 0, 'a file seen once may still be growing');
    await watcher.scan();
    const [made] = await cases();
    assert.deepEqual(made?.metadata, { distribution: 'widespread', source: 'folder' });
    await watcher.scan();
    await watcher.scan();
    assert.equal((await cases()).length, 1);
    // A fresh watcher (a restart) does not take the same file again.
    const restarted = startFolderWatcher(watch, platform.events, { intervalMs: 60_000, log: silent });
    await restarted.scan();
    await restarted.scan();
    await restarted.stop();
    assert.equal((await cases()).length, 1);
    // Replaced by a new version: one more case.
    await cp('samples/tissue-tumour-like.png', file);
    await utimes(file, new Date(), new Date(Date.now() + 5000));
    await watcher.scan();
    await watcher.scan();
    assert.equal((await cases()).length, 2);
    assert.deepEqual((await readdir(path.join(watch, 'ward 3'))).sort(), ['lesion.png', 'lesion.png.json'], 'files are left where they are');
  });
}

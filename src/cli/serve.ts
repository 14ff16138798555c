import { randomBytes, createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { build } from '../api/app.ts';
import type { Config } from '../core/config.ts';
import type { SqlExecutor } from '../core/ports.ts';
import { openPlatform } from '../platform.ts';
import { startCaseWorker } from '../worker/run-case.ts';
import { startFolderWatcher } from '../worker/watch-folder.ts';
import { startDicomScp } from '../worker/dicom-scp.ts';
import type { StoreScp } from '../dicom/net/index.ts';

/**
 * The local API key: generated on first start, kept (mode 0600) in the data folder so it survives
 * restarts, stored in the database as a sha256 only.
 */
async function ensureLocalApiKey(db: SqlExecutor, dataDir: string): Promise<{ key: string; file: string; fresh: boolean }> {
  const file = path.join(dataDir, 'api-key');
  let key: string;
  let fresh = false;
  try {
    key = (await readFile(file, 'utf8')).trim();
  } catch {
    key = `dxf_${randomBytes(24).toString('base64url')}`;
    await mkdir(dataDir, { recursive: true });
    await writeFile(file, `${key}\n`, { mode: 0o600 });
    fresh = true;
  }
  const digest = createHash('sha256').update(key).digest('hex');
  await db.query(`INSERT INTO dxflow_api_key (id, name, key_sha256) VALUES ($1, 'local', $2) ON CONFLICT (key_sha256) DO NOTHING`, [randomUUID(), digest]);
  return { key, file, fresh };
}

export async function serve(config: Config): Promise<number> {
  const log = pino({ level: config.logLevel, redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]'], censor: '[redacted]' } });
  const platform = await openPlatform(config, { log });
  let started: {
    app: Awaited<ReturnType<typeof build>>;
    worker: Awaited<ReturnType<typeof startCaseWorker>> | undefined;
    watcher: ReturnType<typeof startFolderWatcher> | undefined;
    scp: StoreScp | undefined;
    address: string;
    key: Awaited<ReturnType<typeof ensureLocalApiKey>>;
  };
  try {
    const app = await build(platform, { logger: log.child({ component: 'api' }) });
    const worker = config.worker.enabled ? await startCaseWorker(platform, log.child({ component: 'worker' })) : undefined;
    const key = await ensureLocalApiKey(platform.db, config.dataDir);
    const address = await app.listen({ host: config.host, port: config.port });
    const watcher = config.events.watchDir
      ? startFolderWatcher(config.events.watchDir, platform.events, { intervalMs: config.events.watchIntervalMs, log: log.child({ component: 'watcher' }) })
      : undefined;
    const scp = config.dicom.scpPort > 0 ? await startDicomScp(platform, log.child({ component: 'dicom-scp' })) : undefined;
    started = { app, worker, watcher, scp, address, key };
  } catch (e) {
    // A port in use or a bad model must not leave the database and queue open behind a dead server.
    await platform.close().catch(() => undefined);
    throw e;
  }
  const { app, worker, watcher, scp, address } = started;
  const { key, file, fresh } = started.key;

  const where = platform.db.kind === 'pglite' ? `embedded PGlite in ${path.resolve(config.dataDir, 'db')}` : 'PostgreSQL (DXFLOW_DATABASE_URL)';
  process.stdout.write([
    '',
    `dxflow listening on ${address}`,
    `  database: ${where}`,
    `  API key:  ${key}${fresh ? '  (new; saved in ' : '  (from '}${file})`,
    ...(scp ? [`  DICOM:    C-STORE SCP on port ${scp.port}, AE title ${config.dicom.aeTitle}; STOW-RS at ${address}/dicomweb/studies`] : []),
    '',
    'Try it:',
    `  curl -s -H "Authorization: Bearer ${key}" -F image=@samples/tissue-tumour-like.png ${address}/v1/predict`,
    '',
  ].join('\n'));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining requests and jobs');
    await watcher?.stop();
    await scp?.close();
    await app.close();
    await worker?.stop();
    await platform.close();
  };
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => void stop('SIGINT').then(resolve));
    process.once('SIGTERM', () => void stop('SIGTERM').then(resolve));
  });
  return 0;
}

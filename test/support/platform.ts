import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/core/config.ts';
import { openPlatform, type OpenOptions, type Platform } from '../../src/platform.ts';

export const TEST_API_KEY = 'test-key-0123456789abcdef';

export interface PlatformTarget {
  name: 'pglite' | 'postgres';
  open(t: TestContext, env?: Record<string, string>, options?: OpenOptions): Promise<{ platform: Platform; config: Config; dataDir: string }>;
}

/**
 * The databases a platform test runs against: always embedded PGlite; PostgreSQL too when
 * DXFLOW_TEST_DATABASE_URL is set. Each PostgreSQL test gets fresh schemas, dropped when it passes and
 * kept (for inspection) when it fails.
 */
export function platformTargets(): PlatformTarget[] {
  const targets: PlatformTarget[] = [{
    name: 'pglite',
    async open(t, env = {}, options = {}) {
      const dataDir = await mkdtemp(path.join(tmpdir(), 'dxflow-test-'));
      const config = loadConfig({ DXFLOW_DATA_DIR: dataDir, DXFLOW_API_KEY: TEST_API_KEY, DXFLOW_LOG_LEVEL: 'silent', ...env });
      const platform = await openPlatform(config, options);
      t.after(async () => {
        await platform.close();
        await rm(dataDir, { recursive: true, force: true });
      });
      return { platform, config, dataDir };
    },
  }];
  const url = process.env['DXFLOW_TEST_DATABASE_URL'];
  if (url) {
    targets.push({
      name: 'postgres',
      async open(t, env = {}, options = {}) {
        const dataDir = await mkdtemp(path.join(tmpdir(), 'dxflow-test-'));
        const schema = `t_${randomBytes(6).toString('hex')}`;
        const admin = new pg.Client({ connectionString: url });
        await admin.connect();
        await admin.query(`CREATE SCHEMA ${schema}`);
        await admin.end();
        const config = loadConfig({ DXFLOW_DATA_DIR: dataDir, DXFLOW_DATABASE_URL: url, DXFLOW_API_KEY: TEST_API_KEY, DXFLOW_LOG_LEVEL: 'silent', ...env });
        const platform = await openPlatform(config, { dbSchema: schema, queueSchema: `${schema}_boss`, ...options });
        t.after(async () => {
          await platform.close();
          await rm(dataDir, { recursive: true, force: true });
          // Keep the schemas of a failed test for inspection.
          const failed = (t as unknown as { passed?: boolean }).passed === false;
          if (!failed) {
            const c = new pg.Client({ connectionString: url });
            await c.connect();
            await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; DROP SCHEMA IF EXISTS ${schema}_boss CASCADE`);
            await c.end();
          }
        });
        return { platform, config, dataDir };
      },
    });
  }
  return targets;
}

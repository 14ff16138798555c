import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError } from '../../core/errors.ts';

// PGlite keeps the whole PostgreSQL server inside this process and does not stop a second process
// from opening the same data folder; two writers would corrupt it. A lock file holding the owner's
// pid keeps the folder to one process. A lock left by a process that died is taken over.

const LOCK_FILE = 'dxflow.lock';

export interface DataDirLock {
  release(): Promise<void>;
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return false; // our own pid in the file can only be left by an earlier run (a restarted container)
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(path, 'wx', 0o600);
      await file.writeFile(`${process.pid}\n`);
      await file.close();
      return { release: () => unlink(path).catch(() => undefined) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && isRunning(owner)) {
      throw new AppError(
        'CONFIG_INVALID',
        `The embedded database in ${dataDir} is in use by process ${owner}. Stop that process, give this one another data folder, or run several processes against PostgreSQL (DXFLOW_DATABASE_URL). If no such process exists, delete ${path}.`,
      );
    }
    await unlink(path).catch(() => undefined);
  }
  throw new AppError('CONFIG_INVALID', `Could not take the lock ${path} on the embedded database; another process keeps creating it.`);
}

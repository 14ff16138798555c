import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { EventIntake } from '../pipeline/events.ts';
import type { WorkerLog } from './run-case.ts';

// The watched folder of the embedded set-up: the local stand-in for a bucket with notifications. Every
// file that appears (in subfolders too) becomes one case of events.pipeline. A file is taken once its
// size and modification time were the same on two scans, so a file still being copied is left alone;
// files are identified by path, size and time, so a restart or a second scan never makes a second case,
// and a file replaced by a new version makes a new one. `<file>.json` beside a file is its metadata.

interface Seen { size: number; mtimeMs: number }

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith('.') && !e.name.endsWith('.json'))
    .map((e) => path.join(e.parentPath, e.name));
}

async function sidecar(file: string): Promise<Record<string, string>> {
  try {
    const parsed: unknown = JSON.parse(await readFile(`${file}.json`, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
  } catch {
    return {};
  }
}

export function startFolderWatcher(root: string, events: EventIntake, options: { intervalMs: number; log: WorkerLog }): { stop(): Promise<void>; scan(): Promise<void> } {
  const previous = new Map<string, Seen>();
  const done = new Set<string>();
  let running: Promise<void> = Promise.resolve();

  async function scanOnce(): Promise<void> {
    let files: string[];
    try {
      files = await listFiles(root);
    } catch (e) {
      options.log.warn({ err: String(e) }, 'the watched folder cannot be read');
      return;
    }
    for (const file of files) {
      let info: Seen;
      try {
        const s = await stat(file);
        info = { size: s.size, mtimeMs: Math.floor(s.mtimeMs) };
      } catch {
        continue; // gone between listing and stat
      }
      const key = path.relative(root, file);
      const version = `${info.size}-${info.mtimeMs}`;
      const before = previous.get(key);
      previous.set(key, info);
      if (done.has(`${key}@${version}`) || !before || before.size !== info.size || before.mtimeMs !== info.mtimeMs) continue;
      const outcome = await events.ingestOne(
        { source: 'folder', bucket: '', key, version, metadata: await sidecar(file) },
        () => readFile(file),
      );
      done.add(`${key}@${version}`);
      if (outcome.error) options.log.warn({ code: outcome.error.code }, 'a file in the watched folder was refused');
      else if (!outcome.duplicate) options.log.info({ caseId: outcome.caseId }, 'a file in the watched folder became a case');
    }
  }

  const timer = setInterval(() => {
    running = running.then(scanOnce, scanOnce);
  }, options.intervalMs);
  timer.unref();
  return {
    scan: () => (running = running.then(scanOnce, scanOnce)),
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

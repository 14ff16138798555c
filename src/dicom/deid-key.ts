import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { deidentificationKey, keyFromHex, type DeidentificationKey } from './deidentify/index.ts';

/**
 * The key that makes DICOM de-identification repeatable (same UIDs, same date shift per patient):
 * DXFLOW_DEID_KEY when set, else `<dataDir>/deid-key`, created with 32 random bytes (mode 0600) the first
 * time a server needs it — like the local API key — so an embedded installation de-identifies without
 * set-up and stays consistent across restarts. Losing the file breaks the links between studies
 * de-identified before and after.
 */
export async function serverDeidentificationKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<DeidentificationKey> {
  const fromEnv = env['DXFLOW_DEID_KEY'];
  if (fromEnv) return keyFromHex(fromEnv);
  const file = path.join(dataDir, 'deid-key');
  try {
    return deidentificationKey(await readFile(file), file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const handle = await open(file, 'wx', 0o600).catch(async (e: NodeJS.ErrnoException) => {
    // Another process created it first: use theirs.
    if (e.code === 'EEXIST') return undefined;
    throw e;
  });
  if (handle) {
    try {
      await handle.writeFile(randomBytes(32));
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  return deidentificationKey(await readFile(file), file);
}

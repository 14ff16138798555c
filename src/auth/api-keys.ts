import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { AppError } from '../core/errors.ts';
import type { SqlExecutor } from '../core/ports.ts';

// API keys for machines: only the sha256 of a key is stored; the key itself is shown once, when it is
// created. A revoked key stops working on the next request.

export interface ApiKeyInfo {
  id: string;
  name: string;
  createdAt: string;
  revokedAt: string | null;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;

export async function createApiKey(db: SqlExecutor, name: string): Promise<{ id: string; key: string }> {
  if (!NAME.test(name)) throw new AppError('INVALID_REQUEST', `A key name is 1 to 64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit; not ${JSON.stringify(name)}`);
  const key = `dxf_${randomBytes(24).toString('base64url')}`;
  const id = randomUUID();
  await db.query('INSERT INTO dxflow_api_key (id, name, key_sha256) VALUES ($1, $2, $3)', [id, name, createHash('sha256').update(key).digest('hex')]);
  return { id, key };
}

export async function listApiKeys(db: SqlExecutor): Promise<ApiKeyInfo[]> {
  const rows = await db.query<{ id: string; name: string; created_at: Date | string; revoked_at: Date | string | null }>(
    'SELECT id, name, created_at, revoked_at FROM dxflow_api_key ORDER BY created_at, id');
  return rows.map((r) => ({ id: r.id, name: r.name, createdAt: new Date(r.created_at).toISOString(), revokedAt: r.revoked_at === null ? null : new Date(r.revoked_at).toISOString() }));
}

/** Revokes by id; revoking a revoked key changes nothing. */
export async function revokeApiKey(db: SqlExecutor, id: string): Promise<void> {
  const rows = await db.query<{ revoked_at: Date | string | null }>('UPDATE dxflow_api_key SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING revoked_at', [id]);
  if (rows.length === 0) throw new AppError('INVALID_REQUEST', `No API key has the id ${id}; see dxflow keys list`);
}

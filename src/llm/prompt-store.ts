import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppError } from '../core/errors.ts';
import type { Database, SqlExecutor } from '../core/ports.ts';
import { parseTemplate } from './render.ts';

// The prompt registry (tables in migrations/002_prompts.sql). A prompt has numbered versions 1, 2, …
// that never change once created, and labels (production, staging, …) that each point at one version.
// A result records the name, version and label it was produced with, so a version must keep meaning
// the same text forever: the database refuses UPDATE and DELETE on versions, and the text is checked
// against its sha256 whenever it is read.

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const NAME_RULE = 'lower-case letters, digits and hyphens, starting with a letter or digit, at most 63 characters';

export const DEFAULT_PROMPTS_DIR = fileURLToPath(new URL('../../prompts/', import.meta.url));
export const DEFAULT_PROMPT_NAME = 'treatment-recommendation';
export const DEFAULT_LABEL = 'production';

export interface PromptVersion {
  name: string;
  version: number;
  sha256: string;
  createdAt: Date;
  createdBy: string | null;
}

export interface StoredPrompt extends PromptVersion {
  template: string;
  /** The label the prompt was looked up by; null when looked up by version. */
  label: string | null;
}

export interface PromptListing extends PromptVersion {
  /** Labels pointing at this version. */
  labels: string[];
}

export type PromptRef = { label: string } | { version: number };

interface PromptRow {
  name: string;
  version: number;
  template: string;
  sha256: string;
  created_at: Date;
  created_by: string | null;
}

/** The stored form of a template: line endings and a byte-order mark carry no meaning in a prompt. */
function normalise(template: string): string {
  return template.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n');
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw new AppError('INVALID_REQUEST', `"${name}" is not a valid prompt name: use ${NAME_RULE}.`);
}

function checkLabel(label: string): void {
  if (!NAME.test(label)) throw new AppError('INVALID_REQUEST', `"${label}" is not a valid label: use ${NAME_RULE} (e.g. production, staging).`);
}

function checkVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 1) throw new AppError('INVALID_REQUEST', `"${version}" is not a prompt version: versions are whole numbers from 1.`);
}

function toVersion(row: Omit<PromptRow, 'template'>): PromptVersion {
  return { name: row.name, version: row.version, sha256: row.sha256, createdAt: row.created_at, createdBy: row.created_by };
}

async function exists(db: SqlExecutor, name: string): Promise<boolean> {
  const rows = await db.query('SELECT 1 FROM dxflow_prompt WHERE name = $1 LIMIT 1', [name]);
  return rows.length > 0;
}

async function notFound(db: SqlExecutor, name: string, what: string): Promise<AppError> {
  const message = (await exists(db, name))
    ? `Prompt "${name}" has no ${what}.`
    : `There is no prompt named "${name}".`;
  return new AppError('PROMPT_NOT_FOUND', message, { details: { name } });
}

// Concurrent creations of one prompt both compute the same next version; the loser's insert does
// nothing (ON CONFLICT) and it tries again with the next number. PostgreSQL makes the loser wait for
// the winner's commit before deciding the conflict, so each round trip either inserts or sees a new
// version: the bound only guards against a storm of writers.
const CREATE_ATTEMPTS = 20;

/**
 * Creates the next version of a prompt (1 for a new name). The template must parse and use only known
 * variables (PROMPT_INVALID otherwise). Line endings are stored as \n.
 */
export async function createPrompt(db: SqlExecutor, name: string, template: string, options: { createdBy?: string } = {}): Promise<PromptVersion> {
  checkName(name);
  const text = normalise(template);
  parseTemplate(text);
  const digest = sha256(text);
  for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
    const [row] = await db.query<Omit<PromptRow, 'template'>>(
      `INSERT INTO dxflow_prompt (name, version, template, sha256, created_by)
       SELECT $1::text, COALESCE(MAX(version), 0) + 1, $2::text, $3::text, $4::text FROM dxflow_prompt WHERE name = $1::text
       ON CONFLICT (name, version) DO NOTHING
       RETURNING name, version, sha256, created_at, created_by`,
      [name, text, digest, options.createdBy ?? null],
    );
    if (row !== undefined) return toVersion(row);
  }
  throw new AppError('DATABASE_UNAVAILABLE', `Could not create a version of prompt "${name}": ${CREATE_ATTEMPTS} concurrent creations took every version number first.`, { retryable: true });
}

/** One version of a prompt, by label or by number; PROMPT_NOT_FOUND when there is none. */
export async function getPrompt(db: SqlExecutor, name: string, ref: PromptRef): Promise<StoredPrompt> {
  checkName(name);
  let row: PromptRow | undefined;
  let label: string | null = null;
  if ('label' in ref) {
    checkLabel(ref.label);
    label = ref.label;
    [row] = await db.query<PromptRow>(
      `SELECT p.name, p.version, p.template, p.sha256, p.created_at, p.created_by
       FROM dxflow_prompt_label l JOIN dxflow_prompt p ON p.name = l.name AND p.version = l.version
       WHERE l.name = $1 AND l.label = $2`,
      [name, ref.label],
    );
    if (row === undefined) throw await notFound(db, name, `version labelled "${ref.label}"`);
  } else {
    checkVersion(ref.version);
    [row] = await db.query<PromptRow>(
      'SELECT name, version, template, sha256, created_at, created_by FROM dxflow_prompt WHERE name = $1 AND version = $2',
      [name, ref.version],
    );
    if (row === undefined) throw await notFound(db, name, `version ${ref.version}`);
  }
  const actual = sha256(row.template);
  if (actual !== row.sha256) {
    throw new AppError('PROMPT_INVALID', `The stored text of prompt "${name}" version ${row.version} does not match its recorded sha256 (recorded ${row.sha256}, now ${actual}): it was altered outside dxflow. Restore it, or create a new version and promote that.`);
  }
  return { ...toVersion(row), template: row.template, label };
}

/** Every version of every prompt, with the labels pointing at it, by name then version. */
export async function listPrompts(db: SqlExecutor): Promise<PromptListing[]> {
  const rows = await db.query<Omit<PromptRow, 'template'> & { labels: string[] }>(
    `SELECT p.name, p.version, p.sha256, p.created_at, p.created_by,
            COALESCE(array_agg(l.label ORDER BY l.label) FILTER (WHERE l.label IS NOT NULL), '{}'::text[]) AS labels
     FROM dxflow_prompt p LEFT JOIN dxflow_prompt_label l ON l.name = p.name AND l.version = p.version
     GROUP BY p.name, p.version, p.sha256, p.created_at, p.created_by
     ORDER BY p.name, p.version`,
  );
  return rows.map((row) => ({ ...toVersion(row), labels: row.labels }));
}

/** Points label at a version of a prompt (creating the label or moving it); returns where it pointed before. */
export async function promote(db: SqlExecutor, name: string, version: number, label: string): Promise<{ previous: number | null }> {
  checkName(name);
  checkVersion(version);
  checkLabel(label);
  // Versions are never deleted (the table refuses it), so the version found here still exists when
  // the label is written.
  const found = await db.query('SELECT 1 FROM dxflow_prompt WHERE name = $1 AND version = $2', [name, version]);
  if (found.length === 0) throw await notFound(db, name, `version ${version}`);
  const [row] = await db.query<{ previous: number | null }>(
    `WITH before AS (SELECT version FROM dxflow_prompt_label WHERE name = $1 AND label = $3)
     INSERT INTO dxflow_prompt_label (name, label, version) VALUES ($1, $3, $2)
     ON CONFLICT (name, label) DO UPDATE SET version = EXCLUDED.version, updated_at = now()
     RETURNING (SELECT version FROM before) AS previous`,
    [name, version, label],
  );
  return { previous: row?.previous ?? null };
}

// ---------------------------------------------------------------------------------------------------
// The prompts shipped with dxflow: files <name>.v<N>.md in the prompts folder.

const DEFAULT_FILE = /^([a-z0-9][a-z0-9-]{0,62})\.v([1-9][0-9]*)\.md$/;

interface DefaultPrompt {
  name: string;
  versions: { version: number; template: string }[];
}

async function readDefaults(dir: string): Promise<DefaultPrompt[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (e) {
    throw new AppError('INTERNAL', `Cannot read the default prompts folder ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const byName = new Map<string, { version: number; file: string }[]>();
  for (const file of entries.sort()) {
    if (file === 'README.md') continue;
    const match = DEFAULT_FILE.exec(file);
    if (match === null) {
      throw new AppError('PROMPT_INVALID', `${join(dir, file)} is not named <name>.v<version>.md (e.g. treatment-recommendation.v1.md); rename it or move it out of the prompts folder.`);
    }
    const [, name = '', version = ''] = match;
    byName.set(name, [...(byName.get(name) ?? []), { version: Number(version), file }]);
  }
  return Promise.all([...byName].map(async ([name, files]) => {
    files.sort((a, b) => a.version - b.version);
    files.forEach((f, i) => {
      if (f.version !== i + 1) throw new AppError('PROMPT_INVALID', `The default prompt files of "${name}" skip version ${i + 1} (found ${f.file}); number them 1, 2, … without gaps.`);
    });
    const versions = await Promise.all(files.map(async (f) => {
      const template = normalise(await readFile(join(dir, f.file), 'utf8'));
      try {
        parseTemplate(template);
      } catch (e) {
        throw e instanceof AppError ? new AppError(e.code, `${join(dir, f.file)}: ${e.message}`, { cause: e }) : e;
      }
      return { version: f.version, template };
    }));
    return { name, versions };
  }));
}

/**
 * Seeds the shipped prompts: a prompt whose name the registry does not know yet gets every shipped
 * version, and its label `production` points at the newest. A name that already exists is left
 * exactly as it is, so the registry's versions and labels stay the operators' to manage; run at every
 * start, this is a no-op after the first. Returns the names it seeded.
 */
export async function ensureDefaultPrompts(db: Database, dir: string = DEFAULT_PROMPTS_DIR): Promise<{ seeded: string[] }> {
  const defaults = await readDefaults(dir);
  const seeded: string[] = [];
  for (const prompt of defaults) {
    // One transaction per prompt: its versions and its label appear together or not at all. Processes
    // starting together may both get here; ON CONFLICT lets the second one insert nothing.
    const inserted = await db.transaction(async (tx) => {
      if (await exists(tx, prompt.name)) return false;
      let any = false;
      for (const { version, template } of prompt.versions) {
        const rows = await tx.query(
          `INSERT INTO dxflow_prompt (name, version, template, sha256, created_by) VALUES ($1, $2, $3, $4, 'dxflow')
           ON CONFLICT (name, version) DO NOTHING RETURNING version`,
          [prompt.name, version, template, sha256(template)],
        );
        any ||= rows.length > 0;
      }
      const newest = prompt.versions.at(-1)?.version;
      if (any && newest !== undefined) {
        await tx.query('INSERT INTO dxflow_prompt_label (name, label, version) VALUES ($1, $2, $3) ON CONFLICT (name, label) DO NOTHING', [prompt.name, DEFAULT_LABEL, newest]);
      }
      return any;
    });
    if (inserted) seeded.push(prompt.name);
  }
  return { seeded };
}

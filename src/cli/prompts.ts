import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AppError } from '../core/errors.ts';
import type { Database } from '../core/ports.ts';
import { createPrompt, DEFAULT_LABEL, ensureDefaultPrompts, getPrompt, listPrompts, promote, type PromptRef } from '../llm/prompt-store.ts';

// `dxflow prompts …`: the prompt registry from the command line. The caller opens and migrates the
// database; this file only talks to the registry. Failures of the registry (unknown prompt, invalid
// template) are thrown as AppErrors for the command's error handler; usage mistakes return 2.

const OPTIONS = {
  version: { type: 'string' },
  label: { type: 'string' },
  by: { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** For the command table in help.ts. */
export const PROMPTS_COMMAND = {
  summary: 'List, show, create and promote versions of the LLM prompts.',
  usage: 'dxflow prompts list | show NAME [--version N | --label L] | create NAME FILE [--by WHO] | promote NAME VERSION [LABEL]',
  options: OPTIONS,
  details: [
    'list                           every version of every prompt, with its labels and sha256',
    'show NAME                      the text of the version labelled production (--label L, or --version N)',
    'create NAME FILE               checks FILE and stores it as the next version; labels do not move',
    '                               (--by WHO is recorded as the author; default: the user name)',
    'promote NAME VERSION [LABEL]   points LABEL (default production) at VERSION',
    'Versions never change once created. Template syntax and variables: prompts/README.md.',
  ],
};

export interface PromptsCommandDeps {
  db: Database;
  /** When set, the shipped prompts in this folder are seeded first (ensureDefaultPrompts). */
  defaultsDir?: string;
  out?: { write(text: string): unknown };
  err?: { write(text: string): unknown };
}

class UsageError extends Error {}

function positiveInt(text: string, what: string): number {
  if (!/^[1-9][0-9]*$/.test(text)) throw new UsageError(`${what} must be a version number (1, 2, …), not "${text}"`);
  return Number(text);
}

function currentUser(): string | undefined {
  try {
    return userInfo().username || undefined;
  } catch {
    // No passwd entry for this uid (common in containers): the author stays unrecorded.
    return undefined;
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}

/** Runs `dxflow prompts <args>`; args are everything after "prompts". Returns the exit status. */
export async function promptsCommand(args: readonly string[], deps: PromptsCommandDeps): Promise<number> {
  const out = deps.out ?? process.stdout;
  const err = deps.err ?? process.stderr;
  try {
    const { values, positionals } = parseArgs({ args: [...args], options: OPTIONS, allowPositionals: true, strict: true });
    const [action, ...rest] = positionals;
    const expect = (min: number, max: number, usage: string): void => {
      if (rest.length < min || rest.length > max) throw new UsageError(`usage: dxflow prompts ${usage}`);
    };
    if (deps.defaultsDir !== undefined) await ensureDefaultPrompts(deps.db, deps.defaultsDir);
    switch (action) {
      case 'list': {
        expect(0, 0, 'list');
        const prompts = await listPrompts(deps.db);
        if (prompts.length === 0) {
          out.write('no prompts\n');
          return 0;
        }
        out.write(table([
          ['NAME', 'VERSION', 'LABELS', 'SHA256', 'CREATED', 'BY'],
          ...prompts.map((p) => [p.name, String(p.version), p.labels.join(',') || '-', p.sha256.slice(0, 12), p.createdAt.toISOString(), p.createdBy ?? '-']),
        ]));
        return 0;
      }
      case 'show': {
        expect(1, 1, 'show NAME [--version N | --label L]');
        if (values.version !== undefined && values.label !== undefined) throw new UsageError('give --version or --label, not both');
        const ref: PromptRef = values.version !== undefined ? { version: positiveInt(values.version, '--version') } : { label: values.label ?? DEFAULT_LABEL };
        // The text alone, exactly as stored, so that `show NAME > file` and `create NAME file` round-trip.
        out.write((await getPrompt(deps.db, rest[0] ?? '', ref)).template);
        return 0;
      }
      case 'create': {
        expect(2, 2, 'create NAME FILE [--by WHO]');
        const [name = '', file = ''] = rest;
        let template: string;
        try {
          template = await readFile(file, 'utf8');
        } catch (e) {
          throw new AppError('INVALID_REQUEST', `Cannot read the template file ${file}: ${(e as Error).message}`);
        }
        const by = values.by ?? currentUser();
        const created = await createPrompt(deps.db, name, template, by === undefined ? {} : { createdBy: by });
        out.write(`created ${created.name} version ${created.version} (sha256 ${created.sha256})\n`);
        out.write(`labels are unchanged; to use it: dxflow prompts promote ${created.name} ${created.version} ${DEFAULT_LABEL}\n`);
        return 0;
      }
      case 'promote': {
        expect(2, 3, 'promote NAME VERSION [LABEL]');
        const [name = '', versionText = '', label = DEFAULT_LABEL] = rest;
        const version = positiveInt(versionText, 'VERSION');
        const { previous } = await promote(deps.db, name, version, label);
        out.write(`${name}: ${label} → version ${version}${previous === null ? ' (new label)' : previous === version ? ' (unchanged)' : ` (was version ${previous})`}\n`);
        return 0;
      }
      default:
        throw new UsageError(action === undefined ? 'name an action: list, show, create or promote' : `unknown action "${action}": use list, show, create or promote`);
    }
  } catch (e) {
    // parseArgs reports unknown options and missing option values as TypeErrors with a code.
    const isParseError = e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS');
    if (!(e instanceof UsageError) && !isParseError) throw e;
    err.write(`dxflow prompts: ${(e as Error).message}\n\nUsage: ${PROMPTS_COMMAND.usage}\n`);
    return 2;
  }
}

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { loadConfig, type Config } from '../core/config.ts';
import { AppError, toAppError } from '../core/errors.ts';
import { COMMANDS, commandHelp, mainHelp, type CommandName } from './help.ts';

async function readConfig(): Promise<Config> {
  const file = process.env['DXFLOW_CONFIG'];
  let fromFile: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new AppError('CONFIG_INVALID', `DXFLOW_CONFIG points to ${file}, which cannot be read`);
    }
    const parsed: unknown = parseYaml(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new AppError('CONFIG_INVALID', `${file} must hold a YAML or JSON object of settings`);
    }
    fromFile = parsed as Record<string, unknown>;
  }
  return loadConfig(process.env, fromFile);
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    const topic = rest[0];
    process.stdout.write(topic && topic in COMMANDS ? commandHelp(topic as CommandName) : mainHelp());
    return 0;
  }
  if (command === '--version' || command === '-v') {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  if (!(command in COMMANDS)) {
    process.stderr.write(`dxflow: unknown command "${command}"\n\n${mainHelp()}`);
    return 2;
  }
  const name = command as CommandName;
  const spec = COMMANDS[name];
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: { ...spec.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    process.stderr.write(`dxflow ${name}: ${(e as Error).message}\n\n${commandHelp(name)}`);
    return 2;
  }
  if (parsed.values['help']) {
    process.stdout.write(commandHelp(name));
    return 0;
  }
  const config = await readConfig();
  switch (name) {
    case 'serve': {
      const { serve } = await import('./serve.ts');
      return serve(config);
    }
    case 'migrate': {
      const { openDatabase } = await import('../adapters/db/database.ts');
      const { migrate } = await import('../adapters/db/migrate.ts');
      const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
      try {
        const { applied } = await migrate(db);
        process.stdout.write(applied.length ? `applied ${applied.length} migration(s): ${applied.join(', ')}\n` : 'database is up to date\n');
      } finally {
        await db.close();
      }
      return 0;
    }
    case 'analyze': {
      const file = parsed.positionals[0];
      if (!file || parsed.positionals.length > 1) {
        process.stderr.write(`dxflow analyze: give exactly one image file\n\n${commandHelp('analyze')}`);
        return 2;
      }
      const format = String(parsed.values['format'] ?? 'json');
      if (format !== 'json' && format !== 'fhir') {
        process.stderr.write(`dxflow analyze: --format must be json or fhir, not "${format}"\n`);
        return 2;
      }
      const { analyzeFile } = await import('./analyze.ts');
      const note = typeof parsed.values['note'] === 'string' ? parsed.values['note'] : undefined;
      // A throw-away data folder: analyze never touches (or locks) the data folder of a running server.
      const scratch = await mkdtemp(path.join(tmpdir(), 'dxflow-analyze-'));
      try {
        const pipeline = typeof parsed.values['pipeline'] === 'string' ? parsed.values['pipeline'] : config.defaultPipeline;
        return await analyzeFile({ ...config, dataDir: scratch, databaseUrl: undefined, objectsDir: undefined }, { file, pipeline, format, note });
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    }
    case 'models': {
      const [sub] = parsed.positionals;
      const model = parsed.values['model'];
      const input = parsed.values['input'];
      if (sub !== 'predict' || typeof model !== 'string' || typeof input !== 'string') {
        process.stderr.write(`dxflow models: use "dxflow models predict --model FILE --input FILE"\n\n${commandHelp('models')}`);
        return 2;
      }
      if (parsed.values['format'] !== undefined && parsed.values['format'] !== 'json') {
        process.stderr.write('dxflow models predict: --format must be json\n');
        return 2;
      }
      const { predictRows } = await import('./models-predict.ts');
      for await (const row of predictRows({ modelFile: model, inputFile: input, explain: parsed.values['explain'] === true })) {
        process.stdout.write(`${JSON.stringify(row)}\n`);
      }
      return 0;
    }
    case 'prompts': {
      const { promptsCommand } = await import('./prompts.ts');
      const { openDatabase } = await import('../adapters/db/database.ts');
      const { migrate } = await import('../adapters/db/migrate.ts');
      const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
      try {
        await migrate(db);
        // The prompts command parses its own sub-commands and options; the shipped prompts are seeded
        // first, as serve does, so a fresh installation lists them.
        const { DEFAULT_PROMPTS_DIR } = await import('../llm/index.ts');
        return await promptsCommand(rest, { db, defaultsDir: DEFAULT_PROMPTS_DIR });
      } finally {
        await db.close();
      }
    }
    case 'slide': {
      // The slide command parses its own actions and options and needs no database.
      const { slideCommand } = await import('./slide.ts');
      return slideCommand(rest);
    }
    case 'dicom': {
      // The dicom actions parse their own options and need no database.
      const [action, ...args] = rest;
      if (action === 'info') return (await import('./dicom-info.ts')).dicomInfo(args);
      if (action === 'deidentify') return (await import('./dicom-deidentify.ts')).dicomDeidentify(args);
      process.stderr.write(`dxflow dicom: give an action, info or deidentify\n\n${commandHelp('dicom')}`);
      return 2;
    }
    case 'keys': {
      const [action, arg] = parsed.positionals;
      const { openDatabase } = await import('../adapters/db/database.ts');
      const { migrate } = await import('../adapters/db/migrate.ts');
      const keys = await import('../auth/api-keys.ts');
      const valid = (action === 'create' || action === 'revoke') ? parsed.positionals.length === 2 : action === 'list' && parsed.positionals.length === 1;
      if (!valid) {
        process.stderr.write(`dxflow keys: create NAME, list or revoke ID\n\n${commandHelp('keys')}`);
        return 2;
      }
      const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
      try {
        await migrate(db);
        if (action === 'create') {
          const { id, key } = await keys.createApiKey(db, arg as string);
          process.stdout.write(`${key}\n`);
          process.stderr.write(`key ${id} created; it is shown only now, store it (only its sha256 is kept)\n`);
        } else if (action === 'revoke') {
          await keys.revokeApiKey(db, arg as string);
          process.stdout.write(`key ${arg as string} revoked\n`);
        } else {
          process.stdout.write(`${'ID'.padEnd(36)}  ${'NAME'.padEnd(20)}  ${'CREATED'.padEnd(24)}  REVOKED\n`);
          for (const k of await keys.listApiKeys(db)) process.stdout.write(`${k.id}  ${k.name.padEnd(20)}  ${k.createdAt}  ${k.revokedAt ?? '-'}\n`);
        }
        return 0;
      } finally {
        await db.close();
      }
    }
    case 'audit': {
      if (parsed.positionals[0] !== 'verify' || parsed.positionals.length !== 1) {
        process.stderr.write(`dxflow audit: the action is verify\n\n${commandHelp('audit')}`);
        return 2;
      }
      const { openDatabase } = await import('../adapters/db/database.ts');
      const { migrate } = await import('../adapters/db/migrate.ts');
      const { verifyAuditLog } = await import('../audit/log.ts');
      const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
      try {
        await migrate(db);
        const result = await verifyAuditLog(db);
        if (result.intact) {
          process.stdout.write(`audit trail intact: ${result.records} records, head ${result.head}\n`);
          return 0;
        }
        process.stdout.write(`audit trail BROKEN at record ${result.firstBadSeq}: ${result.problem} (${result.records} records verified before it)\n`);
        return 1;
      } finally {
        await db.close();
      }
    }
    case 'pipelines': {
      const { listPipelines } = await import('./analyze.ts');
      return listPipelines(config);
    }
  }
}

run(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    const err = toAppError(e);
    process.stderr.write(`dxflow: ${err.code}: ${err.message}\n${err.code === 'INTERNAL' ? '' : `hint: ${err.hint}\n`}`);
    if (err.code === 'INTERNAL' && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    // Exit now: an error half-way through start-up may leave timers (queue polling) that would keep
    // the process alive without doing anything.
    process.exit(err.code === 'CONFIG_INVALID' ? 78 : 1);
  },
);

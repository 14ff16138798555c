import type { ParseArgsConfig } from 'node:util';
import { PROMPTS_COMMAND } from './prompts.ts';
import { SLIDE_COMMAND } from './slide.ts';
import { DICOM_COMMAND } from './dicom-info.ts';
import { DICOM_DEIDENTIFY_COMMAND } from './dicom-deidentify.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

export const COMMANDS = {
  serve: {
    summary: 'Start the API and a worker in one process (embedded defaults: PGlite, local folders).',
    usage: 'dxflow serve',
    options: {} as Options,
    details: [
      'Listens on DXFLOW_HOST:DXFLOW_PORT (default http://127.0.0.1:8080) and prints the URL and the local',
      'API key (kept in <dataDir>/api-key). Set DXFLOW_DATABASE_URL=postgres://… to use PostgreSQL instead',
      'of the embedded database. Stop with Ctrl-C: requests drain and the current case is resumed on the next',
      'start.',
    ],
  },
  migrate: {
    summary: 'Apply the database migrations and exit (serve also applies them at start).',
    usage: 'dxflow migrate',
    options: {} as Options,
    details: ['Uses DXFLOW_DATABASE_URL, or the embedded database in DXFLOW_DATA_DIR (default .dxflow).'],
  },
  analyze: {
    summary: 'Run a pipeline on one image file, without a server, and print the result.',
    usage: 'dxflow analyze <image> [--pipeline NAME] [--note NOTE.txt|NOTE.json] [--format json|fhir]',
    options: { pipeline: { type: 'string', short: 'p' }, format: { type: 'string', short: 'f' }, note: { type: 'string', short: 'n' } } as Options,
    details: [
      '--pipeline NAME   pipeline from pipelines/ (default: image-classify, or DXFLOW_DEFAULT_PIPELINE)',
      '--note FILE       the clinical note: free text, or a JSON object of structured values',
      '--format json     the case result as JSON (default)',
      '--format fhir     a FHIR R4 Bundle (DiagnosticReport, Observations, Devices, Provenance)',
      'Exit status: 0 on success, 1 when the image is refused or the pipeline fails (the error code is printed).',
    ],
  },
  models: {
    summary: 'Run a tabular (XGBoost) model on rows: dxflow models predict.',
    usage: 'dxflow models predict --model MODEL.json --input ROWS.csv|ROWS.jsonl [--explain] [--format json]',
    options: { model: { type: 'string', short: 'm' }, input: { type: 'string', short: 'i' }, explain: { type: 'boolean' }, format: { type: 'string', short: 'f' } } as Options,
    details: [
      '--model FILE      an XGBoost JSON model (save_model("model.json"))',
      '--input FILE      CSV with a header of feature names, or JSON lines keyed by feature name; empty, NA or null = missing',
      '--explain         add exact TreeSHAP values by feature name plus "bias" (margin space, as XGBoost pred_contribs)',
      '--format json     one JSON object per row (the only format)',
    ],
  },
  prompts: {
    summary: PROMPTS_COMMAND.summary,
    usage: PROMPTS_COMMAND.usage,
    options: PROMPTS_COMMAND.options as Options,
    details: PROMPTS_COMMAND.details,
  },
  slide: {
    summary: SLIDE_COMMAND.summary,
    usage: SLIDE_COMMAND.usage,
    options: SLIDE_COMMAND.options as Options,
    details: SLIDE_COMMAND.details,
  },
  dicom: {
    summary: 'DICOM files: describe one (info) or de-identify one (deidentify).',
    usage: `${DICOM_COMMAND.usage}\n       ${DICOM_DEIDENTIFY_COMMAND.usage}`,
    options: { ...DICOM_COMMAND.options, ...DICOM_DEIDENTIFY_COMMAND.options } as Options,
    details: [...DICOM_COMMAND.details, '', ...DICOM_DEIDENTIFY_COMMAND.details],
  },
  keys: {
    summary: 'API keys for machines: create (shown once), list, revoke.',
    usage: 'dxflow keys create NAME | dxflow keys list | dxflow keys revoke ID',
    options: {} as Options,
    details: [
      'create NAME   prints a new key once; only its sha256 is stored',
      'list          id, name, created and revoked times (never the keys)',
      'revoke ID     the key stops working on the next request',
    ],
  },
  audit: {
    summary: 'Check the audit trail: every record in order, none edited, removed or inserted.',
    usage: 'dxflow audit verify',
    options: {} as Options,
    details: [
      'verify     walks the hash chain from the first record; exit 0 and the head hash when intact,',
      '           exit 1 naming the first record that was changed, removed or inserted.',
      '           Keep the printed head hash elsewhere: it also proves that no record was cut from the end.',
    ],
  },
  pipelines: {
    summary: 'List the pipelines and the registered stages.',
    usage: 'dxflow pipelines',
    options: {} as Options,
    details: [],
  },
} as const satisfies Record<string, { summary: string; usage: string; options: Options; details: string[] }>;

export type CommandName = keyof typeof COMMANDS;

export function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'dxflow — medical images in, an explained FHIR-ready result out.',
    '',
    'Usage: dxflow <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Every command takes --help. Configuration comes from DXFLOW_* environment variables and an optional',
    'YAML/JSON file named by DXFLOW_CONFIG (see docs/configuration.md).',
    '',
  ].join('\n');
}

export function commandHelp(name: CommandName): string {
  const c = COMMANDS[name];
  return [`${c.summary}`, '', `Usage: ${c.usage}`, ...(c.details.length ? ['', ...c.details] : []), '', '  -h, --help        show this help', ''].join('\n');
}

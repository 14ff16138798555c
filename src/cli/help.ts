import type { ParseArgsConfig } from 'node:util';

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
    usage: 'dxflow analyze <image> [--pipeline NAME] [--format json|fhir]',
    options: { pipeline: { type: 'string', short: 'p' }, format: { type: 'string', short: 'f' } } as Options,
    details: [
      '--pipeline NAME   pipeline from pipelines/ (default: image-classify, or DXFLOW_DEFAULT_PIPELINE)',
      '--format json     the case result as JSON (default)',
      '--format fhir     a FHIR R4 Bundle (DiagnosticReport, Observations, Devices, Provenance)',
      'Exit status: 0 on success, 1 when the image is refused or the pipeline fails (the error code is printed).',
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

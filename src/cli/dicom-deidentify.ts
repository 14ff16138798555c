import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig } from '../core/config.ts';
import { AppError } from '../core/errors.ts';
import { type DatesOption, deidentifyDicom, type DeidentifyOutcome, parseSafePrivate, quarantineError, type SafePrivateTag } from '../dicom/deidentify/deidentify.ts';
import { dcmjs } from '../dicom/deidentify/dcmjs.ts';
import { type DeidentificationKey, deidentificationKey, keyFromHex } from '../dicom/deidentify/uid.ts';

// `dxflow dicom deidentify IN OUT`: writes a de-identified copy of one DICOM file (PS3.15 Annex E,
// Basic Application Level Confidentiality Profile). A quarantined instance (text possibly burned into
// its pixels) is not written at all: exit status 3, and OUT is left as it was. The output is written
// under a temporary name beside OUT and renamed into place when complete, so OUT never holds a partial file.
//
// The key: UIDs are replaced by a keyed hash so that the files of a study, de-identified one at a
// time, keep their references. That only works if every run uses the same key, and the key must stay
// secret (whoever has it can test a guessed original UID). So the command refuses to run without one
// rather than making up a random key per run (which would silently break the links between files) or
// writing one to disk on its own (a secret the user did not ask to create and might publish with the data).

export const DICOM_DEIDENTIFY_OPTIONS = {
  'key-file': { type: 'string' },
  option: { type: 'string', multiple: true },
  'safe-private': { type: 'string', multiple: true },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** For the command table in help.ts. */
export const DICOM_DEIDENTIFY_COMMAND = {
  summary: 'De-identify a DICOM file (PS3.15 Basic Application Level Confidentiality Profile).',
  usage: 'dxflow dicom deidentify IN OUT [--key-file FILE] [--option retain-longitudinal-dates|retain-full-dates|retain-patient-characteristics]... [--safe-private TAG]...',
  options: DICOM_DEIDENTIFY_OPTIONS,
  details: [
    'IN, OUT                 one DICOM Part 10 file in, its de-identified copy out',
    '--key-file FILE         secret key, 32 or more random bytes (head -c 32 /dev/urandom > FILE); or set',
    '                        DXFLOW_DEID_KEY to 64+ hex digits. Required: the same key gives the same new UIDs',
    '                        in every file and run, so a study de-identified file by file stays linked',
    '--option retain-longitudinal-dates   move every date of a patient by the same number of days',
    '                        (1-365 into the past, chosen from the key and the Patient ID)',
    '--option retain-full-dates           keep dates and times unchanged',
    '--option retain-patient-characteristics   keep sex, age, size, weight, ethnic group, smoking/pregnancy status',
    '--safe-private TAG      keep a private attribute: GGGG,EEEE or GGGG,CREATOR,EE (repeat the option)',
    'Exit status: 0 written, 2 usage, 3 quarantined (possible burned-in text; nothing written), 1 other errors.',
  ],
};

const OPTION_NAMES = ['retain-longitudinal-dates', 'retain-full-dates', 'retain-patient-characteristics'] as const;

class UsageError extends Error {}

interface Io {
  out?: { write(text: string): unknown };
  err?: { write(text: string): unknown };
  env?: NodeJS.ProcessEnv;
}

/** The key from --key-file, else DXFLOW_DEID_KEY; an AppError (CONFIG_INVALID) when there is none. */
export async function loadDeidentificationKey(keyFile: string | undefined, env: NodeJS.ProcessEnv, warn: (text: string) => void): Promise<DeidentificationKey> {
  if (keyFile !== undefined) {
    let bytes: Buffer;
    try {
      const info = await stat(keyFile);
      if (!info.isFile()) throw new Error('not a regular file');
      if (info.size > 4096) throw new Error(`${info.size} bytes is not a key file`);
      // A key readable by other users is not secret; say so, but do not refuse (a CI runner may mount it so).
      if ((info.mode & 0o077) !== 0) warn(`dxflow dicom deidentify: warning: ${keyFile} is readable by other users; chmod 600 it\n`);
      bytes = await readFile(keyFile);
    } catch (e) {
      throw new AppError('CONFIG_INVALID', `Cannot read the de-identification key file ${keyFile}: ${(e as Error).message}`, { cause: e });
    }
    return deidentificationKey(bytes, keyFile);
  }
  const hex = env['DXFLOW_DEID_KEY'];
  if (hex !== undefined && hex.trim() !== '') return keyFromHex(hex);
  throw new AppError(
    'CONFIG_INVALID',
    'No de-identification key: pass --key-file FILE (32+ random bytes, e.g. head -c 32 /dev/urandom > deid.key) or set DXFLOW_DEID_KEY to 64+ hex digits (openssl rand -hex 32). Use the same key for every file of a study so their UIDs stay linked, and keep it secret.',
  );
}

async function writeAtomically(outPath: string, bytes: Buffer): Promise<void> {
  const temporary = path.join(path.dirname(outPath), `.${path.basename(outPath)}.${process.pid}.partial`);
  let handle;
  try {
    handle = await open(temporary, 'wx');
  } catch (e) {
    throw new AppError('INVALID_REQUEST', `Cannot write ${outPath}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await handle.writeFile(bytes);
    await handle.sync();
    await handle.close();
    await rename(temporary, outPath);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw new AppError('INVALID_REQUEST', `Cannot write ${outPath}: ${(e as Error).message}`, { cause: e });
  }
}

/** Runs `dxflow dicom deidentify IN OUT [options]`; `args` are the arguments after "deidentify". */
export async function dicomDeidentify(args: string[], io: Io = {}): Promise<number> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  const env = io.env ?? process.env;
  let values: { 'key-file'?: string; option?: string[]; 'safe-private'?: string[] };
  let positionals: string[];
  let safePrivate: SafePrivateTag[];
  try {
    ({ values, positionals } = parseArgs({ args, options: DICOM_DEIDENTIFY_OPTIONS, allowPositionals: true, strict: true }));
    if (positionals.length === 3 && positionals[0] === 'deidentify') positionals = positionals.slice(1);
    if (positionals.length !== 2) throw new UsageError(`give exactly two files, IN and OUT (got ${positionals.length})`);
    for (const o of values.option ?? []) {
      if (!(OPTION_NAMES as readonly string[]).includes(o)) throw new UsageError(`unknown --option "${o}": use ${OPTION_NAMES.join(', ')}`);
    }
    if (values.option?.includes('retain-longitudinal-dates') && values.option.includes('retain-full-dates')) {
      throw new UsageError('choose one of retain-longitudinal-dates (dates moved) and retain-full-dates (dates kept)');
    }
    safePrivate = (values['safe-private'] ?? []).map((text) => {
      try {
        return parseSafePrivate(text);
      } catch (e) {
        throw new UsageError(`--safe-private: ${(e as Error).message}`);
      }
    });
  } catch (e) {
    const isParseError = e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS');
    if (!(e instanceof UsageError) && !isParseError) throw e;
    err.write(`dxflow dicom deidentify: ${(e as Error).message}\n\nUsage: ${DICOM_DEIDENTIFY_COMMAND.usage}\n`);
    return 2;
  }
  const [inPath = '', outPath = ''] = positionals;
  const options = values.option ?? [];
  const dates: DatesOption = options.includes('retain-longitudinal-dates') ? 'shift' : options.includes('retain-full-dates') ? 'keep' : 'remove';

  if (path.resolve(inPath) === path.resolve(outPath)) {
    throw new AppError('INVALID_REQUEST', 'OUT is the same file as IN; write the de-identified copy to another file so the original is not overwritten.');
  }
  const key = await loadDeidentificationKey(values['key-file'], env, (t) => err.write(t));
  // The key is a secret read here, not a setting of the typed configuration.
  const { limits } = loadConfig({ ...env, DXFLOW_DEID_KEY: undefined });
  let size: number;
  try {
    const info = await stat(inPath);
    if (!info.isFile()) throw new Error('not a regular file');
    size = info.size;
  } catch (e) {
    throw new AppError('INVALID_REQUEST', `Cannot read ${inPath}: ${(e as Error).message}`, { cause: e });
  }
  // The size is checked before the file is read, so an oversized file is never loaded into memory.
  if (size > limits.maxBytes) {
    throw new AppError('FILE_TOO_LARGE', `${inPath} is ${size} bytes, above the limit of ${limits.maxBytes} bytes (DXFLOW_LIMITS_MAX_BYTES).`);
  }
  const input = await readFile(inPath);

  // dcmjs reports recoverable oddities of the input on the console; the command reports its own outcome.
  dcmjs().log.setLevel('silent');
  const outcome: DeidentifyOutcome = deidentifyDicom(input, { key, dates, retainPatientCharacteristics: options.includes('retain-patient-characteristics'), safePrivate, maxBytes: limits.maxBytes });
  if (outcome.status === 'quarantined') {
    const refusal = quarantineError(outcome.reason);
    err.write(`dxflow: ${refusal.code}: ${inPath} was not de-identified: ${outcome.reason}. Nothing was written to ${outPath}.\nhint: ${refusal.hint}\n`);
    return 3;
  }
  await writeAtomically(outPath, outcome.bytes);
  const s = outcome.summary;
  out.write(
    `wrote ${outPath} (${outcome.bytes.length} bytes): ${s.removed} attributes removed, ${s.emptied} emptied, ${s.replacedWithDummy} replaced by dummies, ` +
      `${s.uidsReplaced} UIDs replaced, ${s.datesShifted} dates shifted, ${s.privateRemoved} private attributes removed, ${s.privateKept} kept; ` +
      `method codes ${s.methodCodes.join(', ')}\n`,
  );
  return 0;
}

import { readFile, stat } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig } from '../core/config.ts';
import { AppError } from '../core/errors.ts';
import { type DicomInfo, type DicomLimits, inspectDicom } from '../dicom/index.ts';

// `dxflow dicom info FILE [--format json|text]`: what a DICOM file is (transfer syntax, SOP class,
// modality, geometry, bits, photometric interpretation) and whether its pixels decode, and if not why.
// Nothing identifying is printed — no patient, study or instance attributes, not even the file name
// (file names often carry patient names) — so the output can go to logs and tickets.

const OPTIONS = {
  format: { type: 'string', short: 'f' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** For the command table in help.ts. */
export const DICOM_COMMAND = {
  summary: 'Describe a DICOM file (transfer syntax, SOP class, size, bits) and whether its pixels decode.',
  usage: 'dxflow dicom info FILE [--format json|text]',
  options: OPTIONS,
  details: [
    'info FILE        transfer syntax (UID and name), SOP class, modality, rows, columns, frames, bits,',
    '                 photometric interpretation, and whether frame 0 decodes (else the error code and why);',
    '                 no patient, study or instance attributes are printed',
    '--format json    JSON (default); --format text: one attribute per line',
    'Limits: DXFLOW_LIMITS_MAX_PIXELS and DXFLOW_LIMITS_MAX_BYTES apply as for uploads.',
  ],
};

class UsageError extends Error {}

interface Output {
  write(text: string): unknown;
}

export interface DicomInfoDeps {
  out?: Output;
  err?: Output;
  /** Defaults to the configured upload limits (DXFLOW_LIMITS_*). */
  limits?: DicomLimits;
}

function formatText(info: DicomInfo, bytes: number): string {
  const value = (v: unknown): string => (v === null || v === undefined ? '-' : String(v));
  const lines = [
    `transfer syntax:            ${info.transferSyntax.uid}${info.transferSyntax.name ? ` (${info.transferSyntax.name})` : ' (not a standard transfer syntax)'}`,
    `SOP class:                  ${info.sopClass ? `${info.sopClass.uid}${info.sopClass.name ? ` (${info.sopClass.name})` : ''}` : '-'}`,
    `modality:                   ${value(info.modality)}`,
    `rows × columns:             ${value(info.rows)} × ${value(info.columns)}`,
    `frames:                     ${info.frames}`,
    `samples per pixel:          ${value(info.samplesPerPixel)}`,
    `photometric interpretation: ${value(info.photometricInterpretation)}`,
    `bits allocated/stored/high: ${value(info.bitsAllocated)}/${value(info.bitsStored)}/${value(info.highBit)}`,
    `pixel representation:       ${value(info.pixelRepresentation)}`,
    `planar configuration:       ${value(info.planarConfiguration)}`,
    `pixel data:                 ${info.pixelData}${info.fragments === null ? '' : ` (${info.fragments} fragments)`}`,
    `data set:                   ${info.dataSetEncoding.explicitVr ? 'explicit' : 'implicit'} VR, ${info.dataSetEncoding.littleEndian ? 'little' : 'big'} endian${info.dataSetEncoding.deflated ? ', deflated' : ''}; ${info.elements} elements; ${bytes} bytes`,
    `decodable:                  ${info.decodable ? 'yes' : `no — ${info.notDecodable?.code}: ${info.notDecodable?.message}`}`,
  ];
  return lines.join('\n') + '\n';
}

/**
 * Runs `dxflow dicom <args>`; args are everything after "dicom" (a leading "info" is the action).
 * Returns the exit status: 0 when the file was described (decodable or not), 2 on a usage error. A file
 * that cannot be read as DICOM at all is thrown as an AppError for the command's error handler.
 */
export async function dicomInfo(args: string[], deps: DicomInfoDeps = {}): Promise<number> {
  const out = deps.out ?? process.stdout;
  const err = deps.err ?? process.stderr;
  try {
    const { values, positionals } = parseArgs({ args: [...args], options: OPTIONS, allowPositionals: true, strict: true });
    // "info" is the only action; the file alone is accepted too (when the caller has taken the action).
    let rest = positionals;
    if (rest[0] === 'info') rest = rest.slice(1);
    else if (rest.length > 1) throw new UsageError(`unknown action "${rest[0]}": use info`);
    const [file] = rest;
    if (file === undefined) throw new UsageError('name the DICOM file');
    if (rest.length > 1) throw new UsageError(`unexpected argument "${rest[1]}"`);
    const format = values.format ?? 'json';
    if (format !== 'json' && format !== 'text') throw new UsageError('--format must be json or text');

    const limits = deps.limits ?? (({ maxPixels, maxBytes }) => ({ maxPixels, maxBytes }))(loadConfig(process.env).limits);
    let bytes: Buffer;
    try {
      // The size first: a file over the limit is refused without being read.
      const { size } = await stat(file);
      if (size > (limits.maxBytes ?? Infinity)) {
        throw new AppError('FILE_TOO_LARGE', `The file has ${size} bytes; the limit is ${limits.maxBytes} (DXFLOW_LIMITS_MAX_BYTES).`);
      }
      bytes = await readFile(file);
    } catch (e) {
      if (e instanceof AppError) throw e;
      // A missing or unreadable file is the user's input, not an internal failure.
      // The path is left out of the message: it may name the patient.
      const code = (e as { code?: unknown }).code;
      throw new AppError('INVALID_REQUEST', `Cannot open the DICOM file (${typeof code === 'string' ? code : (e as Error).message}); check the path and its permissions.`, { cause: e });
    }
    const info = await inspectDicom(bytes, limits);
    out.write(format === 'json' ? JSON.stringify({ bytes: bytes.length, ...info }, null, 2) + '\n' : formatText(info, bytes.length));
    return 0;
  } catch (e) {
    // parseArgs reports unknown options and missing option values as TypeErrors with a code.
    const isParseError = e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS');
    if (!(e instanceof UsageError) && !isParseError) throw e;
    err.write(`dxflow dicom: ${(e as Error).message}\n\nUsage: ${DICOM_COMMAND.usage}\n`);
    return 2;
  }
}

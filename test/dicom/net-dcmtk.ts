import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

// dcmtk (storescu, echoscu, dcmdump) as the real DICOM client and the reference reader, and pydicom's
// public test files as the instances sent. Tests that need them skip with a message when they are
// missing (Debian packages dcmtk and python3-pydicom).

export const PYDICOM_TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

export function dcmtkMissing(): string | false {
  for (const tool of ['storescu', 'echoscu', 'dcmdump']) {
    if (spawnSync(tool, ['--version'], { encoding: 'utf8' }).status !== 0) return `dcmtk's ${tool} is not available; install the Debian package dcmtk to test against a real DICOM client`;
  }
  if (!existsSync(path.join(PYDICOM_TEST_FILES, 'CT_small.dcm'))) return `pydicom's test files are not at ${PYDICOM_TEST_FILES}; install the Debian package python3-pydicom`;
  return false;
}

export interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
}

export function runTool(command: string, args: string[], timeoutMs = 60_000): Promise<ToolRun> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * dcmdump's listing of the data set only (no File Meta Information), normalised for what a sender may
 * legitimately change while transmitting: the length encoding of sequences and items (and so their
 * delimitation items), the value lengths in the comments, and Data Set Trailing Padding (FFFC,FFFC),
 * which storescu drops. Every element's tag, VR and full value stays in the comparison.
 */
export async function normalizedDataset(file: string): Promise<string[]> {
  const run = await runTool('dcmdump', ['-q', '+L', '-dc', file]);
  if (run.code !== 0) throw new Error(`dcmdump failed on ${file}: ${run.stderr}`);
  const lines = run.stdout.split('\n');
  const start = lines.findIndex((l) => l.startsWith('# Dicom-Data-Set'));
  return lines
    .slice(start + 1)
    .filter((l) => l.trim() !== '' && !l.startsWith('# Used TransferSyntax'))
    .filter((l) => !/\((fffe,e00d|fffe,e0dd|fffc,fffc)\)/.test(l))
    .map((l) =>
      l
        .replace(/\((Sequence|Item) with (explicit|undefined) length #=(\d+)\)/, '($1, $3 items)')
        .replace(/\s+# .*$/, '')
        .trimEnd(),
    );
}

/** The File Meta Information of a Part 10 file as dcmdump reads it: attribute name → value text. */
export async function metaHeader(file: string): Promise<Map<string, string>> {
  const run = await runTool('dcmdump', ['-q', '-M', file]);
  if (run.code !== 0) throw new Error(`dcmdump failed on ${file}: ${run.stderr}`);
  const meta = new Map<string, string>();
  for (const line of run.stdout.split('\n')) {
    const m = /^\(0002,[0-9a-f]{4}\) \w\w (.*?)\s+#\s+\d+, \d+ (\w+)$/.exec(line);
    if (m) meta.set(m[2] as string, (m[1] as string).replace(/^\[|\]$/g, ''));
  }
  return meta;
}

/** The transfer syntaxes and contexts storescu proposes (-xf): one context per syntax for each SOP class. */
export async function writeStorescuConfig(file: string): Promise<void> {
  const syntaxes: Record<string, string[]> = {
    Uncompressed: ['LittleEndianImplicit', 'LittleEndianExplicit', 'BigEndianExplicit'],
    BigEndian: ['BigEndianExplicit'],
    ImplicitOnly: ['LittleEndianImplicit'],
    J2K: ['JPEG2000'],
    J2KLossless: ['JPEG2000LosslessOnly'],
    RLE: ['RLELossless'],
    JPEGBaseline: ['JPEGBaseline'],
    JPEGExtended: ['JPEGExtended:Process2+4'],
    JPEGLS: ['JPEGLSLossless'],
    Deflated: ['DeflatedLittleEndianExplicit'],
  };
  const lines = ['[[TransferSyntaxes]]'];
  for (const [name, list] of Object.entries(syntaxes)) {
    lines.push(`[${name}]`, ...list.map((ts, i) => `TransferSyntax${i + 1} = ${ts}`));
  }
  lines.push('[[PresentationContexts]]', '[All]');
  let n = 0;
  for (const sopClass of ['CTImageStorage', 'MRImageStorage', 'SecondaryCaptureImageStorage']) {
    for (const name of Object.keys(syntaxes)) lines.push(`PresentationContext${++n} = ${sopClass}\\${name}`);
  }
  lines.push('[[Profiles]]', '[Default]', 'PresentationContexts = All', '');
  await writeFile(file, lines.join('\n'));
}

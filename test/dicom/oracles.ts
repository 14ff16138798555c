import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// Reference decoders for the DICOM tests, run as separate processes: pydicom (Debian's python3-pydicom,
// with numpy and Pillow) for stored values, and dcmtk's dcm2pnm family for rendered 8-bit images. Tests
// that need one skip with a message when it is missing; the platform itself never runs either.

const PYTHON = '/usr/bin/python3';

export const PYDICOM_TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

export function pydicomMissing(): string | false {
  const probe = spawnSync(PYTHON, ['-c', 'import pydicom, numpy'], { encoding: 'utf8' });
  return probe.status === 0 ? false : `pydicom is not available (${PYTHON} -c "import pydicom, numpy" failed); install python3-pydicom to compare pixels with it`;
}

// For each file: frame 0 of pixel_array as little-endian int64 (<index>.bin) and, for YBR colour
// images, the same frame converted by pydicom to RGB (<index>.rgb.bin). pydicom 2.x returns JPEG YBR
// data unconverted (it asks Pillow for YCbCr), so the conversion is pydicom's own convert_color_space.
const SCRIPT = `
import json, sys, warnings
warnings.simplefilter('ignore')
import numpy as np, pydicom
from pydicom.pixel_data_handlers.util import convert_color_space
out_dir, paths = sys.argv[1], sys.argv[2:]
results = []
for index, path in enumerate(paths):
    entry = {'file': path}
    try:
        ds = pydicom.dcmread(path)
        array = ds.pixel_array
        frames = int(ds.get('NumberOfFrames', 1) or 1)
        if frames > 1:
            array = array[0]
        np.ascontiguousarray(array.astype('<i8')).tofile(f'{out_dir}/{index}.bin')
        pi = str(ds.PhotometricInterpretation)
        entry.update(ok=True, shape=list(array.shape), photometric=pi)
        if pi.startswith('YBR') and array.ndim == 3:
            rgb = convert_color_space(array.astype('uint8'), 'YBR_FULL', 'RGB')
            np.ascontiguousarray(rgb.astype('uint8')).tofile(f'{out_dir}/{index}.rgb.bin')
            entry['rgb'] = True
    except Exception as error:
        entry.update(ok=False, error=f'{type(error).__name__}: {error}'[:200])
    results.append(entry)
json.dump(results, sys.stdout)
`;

export interface PydicomFrame {
  file: string;
  ok: boolean;
  error?: string;
  shape?: number[];
  photometric?: string;
  /** Frame 0 as pixel_array gives it (stored values; YBR left as YBR). */
  values?: Float64Array;
  /** For YBR images, pydicom's conversion to RGB. */
  rgb?: Uint8Array;
}

/** Frame 0 of each file as pydicom decodes it, in one Python process. */
export function pydicomFrames(files: string[], workDir: string): PydicomFrame[] {
  const run = spawnSync(PYTHON, ['-c', SCRIPT, workDir, ...files], { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 120_000 });
  if (run.status !== 0) throw new Error(`pydicom failed: ${run.stderr}`);
  const results = JSON.parse(run.stdout) as PydicomFrame[];
  return results.map((r, index) => {
    if (!r.ok) return r;
    const raw = readFileSync(path.join(workDir, `${index}.bin`));
    const big = new BigInt64Array(raw.buffer, raw.byteOffset, raw.length / 8);
    const values = Float64Array.from(big, (v) => Number(v));
    const rgbPath = path.join(workDir, `${index}.rgb.bin`);
    return { ...r, values, ...(existsSync(rgbPath) ? { rgb: new Uint8Array(readFileSync(rgbPath)) } : {}) };
  });
}

// --- dcmtk ----------------------------------------------------------------------------------------------

export function dcmtkMissing(): string | false {
  const probe = spawnSync('dcmj2pnm', ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? false : 'dcmtk is not available (dcmj2pnm --version failed); apt-get install dcmtk to compare rendered pixels with it';
}

export interface Pnm {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

/** Reads binary PGM (P5) or PPM (P6) with maxval 255. */
export function readPnm(bytes: Buffer): Pnm {
  const header = /^(P[56])\s+(?:#[^\n]*\n\s*)*(\d+)\s+(\d+)\s+(\d+)\s/.exec(bytes.toString('latin1', 0, 200));
  if (!header || header[4] !== '255') throw new Error('not an 8-bit binary PGM/PPM');
  const width = Number(header[2]);
  const height = Number(header[3]);
  const channels = header[1] === 'P6' ? 3 : 1;
  const start = header[0].length;
  return { width, height, channels, data: new Uint8Array(bytes.subarray(start, start + width * height * channels)) };
}

/**
 * Frame 0 rendered by dcmtk: dcmj2pnm (uncompressed, RLE, JPEG) or dcml2pnm (JPEG-LS), with the
 * given window options (e.g. ['+Wi', '1'] for the file's first window, ['+Wm'] for min–max).
 */
export function dcmtkRender(file: string, windowOptions: string[], workDir: string, jpegLs: boolean): Pnm | { error: string } {
  const out = path.join(workDir, `${path.basename(file)}-${windowOptions.join('')}.pnm`);
  const run = spawnSync(jpegLs ? 'dcml2pnm' : 'dcmj2pnm', ['+op', ...windowOptions, '+F', '1', file, out], { encoding: 'utf8', timeout: 60_000 });
  if (run.status !== 0 || !existsSync(out)) return { error: `${run.stderr}`.trim() || `exit status ${run.status}` };
  return readPnm(readFileSync(out));
}

export function writeBytes(workDir: string, name: string, bytes: Uint8Array): string {
  const file = path.join(workDir, name);
  writeFileSync(file, bytes);
  return file;
}

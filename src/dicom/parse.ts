import { createRequire } from 'node:module';
import type * as DicomParser from 'dicom-parser';
import type { DataSet, Element } from 'dicom-parser';
import { AppError } from '../core/errors.ts';
import { Deadline, DICOM_LIMIT_DEFAULTS, type DicomLimits, type GuardedDicom, type GuardMode, guardDicom, tagText } from './guard.ts';
import { sopClassName, transferSyntaxName } from './uids.ts';

// DICOM parsing: guard.ts checks the structure, then dicom-parser reads the data set (up to the top-level
// Pixel Data, which the guard has located) and the attributes needed to size, render and describe an
// image are taken from it with their value representations checked.

const require = createRequire(import.meta.url);
// dicom-parser is a UMD bundle: loaded through require, typed by its own declarations.
const dicomParser = require('dicom-parser') as typeof DicomParser;

/** Top-level attributes of the Image Pixel (PS3.3 C.7.6.3), Multi-frame, Modality LUT and VOI LUT modules. */
export interface DicomImageAttributes {
  transferSyntaxUid: string;
  rows?: number;
  columns?: number;
  samplesPerPixel?: number;
  photometricInterpretation?: string;
  planarConfiguration?: number;
  numberOfFrames?: number;
  bitsAllocated?: number;
  bitsStored?: number;
  highBit?: number;
  pixelRepresentation?: number;
  /** First value when the attribute is multi-valued. */
  windowCenter?: number;
  windowWidth?: number;
  rescaleIntercept?: number;
  rescaleSlope?: number;
  /**
   * Where the top-level Pixel Data (7FE0,0010) value starts and its declared length (undefined for an
   * encapsulated value). Reading the header does not check the length against the file; decoding does.
   */
  pixelData?: { offset: number; length: number | undefined };
}

export interface ParsedDicom {
  guarded: GuardedDicom;
  /** dicom-parser's data set: the file meta and the top-level elements before Pixel Data. */
  dataSet: DataSet;
  attributes: DicomImageAttributes;
  deadline: Deadline;
}

/** Guards, then parses. `header` stops at Pixel Data; `full` also walks (and checks) everything after it. */
export function parseDicom(bytes: Uint8Array, limits: DicomLimits, mode: GuardMode, deadline = new Deadline(limits.timeoutMs ?? DICOM_LIMIT_DEFAULTS.timeoutMs)): ParsedDicom {
  const guarded = guardDicom(bytes, limits, mode, deadline);
  let dataSet: DataSet;
  try {
    const untilTag = guarded.parserStopTag === undefined ? 'x7fe00010' : `x${guarded.parserStopTag.toString(16).padStart(8, '0')}`;
    dataSet = dicomParser.parseDicom(guarded.bytes, { untilTag });
  } catch (error) {
    // dicom-parser throws strings, or { exception, dataSet } objects; the guard has already refused
    // every structural problem it knows of, so this is damage of another kind.
    const reason = typeof error === 'string' ? error : error instanceof Error ? error.message : typeof error === 'object' && error !== null && 'exception' in error ? String(error.exception) : String(error);
    throw new AppError('CORRUPT_IMAGE', `The DICOM data set cannot be read (${reason}); re-export it from the source system.`, { cause: error });
  }
  deadline.check('parsing the data set');
  return { guarded, dataSet, attributes: imageAttributes(guarded, dataSet), deadline };
}

/** The image attributes of a file, reading no further than its Pixel Data (for inspecting uploads). */
export function readDicomImageAttributes(bytes: Uint8Array, limits: Omit<DicomLimits, 'maxPixels'> = {}): DicomImageAttributes {
  return parseDicom(bytes, { maxPixels: Infinity, ...limits }, 'header').attributes;
}

// --- typed access ----------------------------------------------------------------------------------

const xtag = (tag: number): string => `x${tag.toString(16).padStart(8, '0')}`;

/**
 * Longest text value read. The attributes read are short strings (PS3.5 Table 6.2-1: UI 64, CS 16,
 * DS 16, IS 12 bytes per value); a few values of a multi-valued DS fit easily.
 */
const MAX_TEXT_VALUE = 1024;

type ValueKind = 'US' | 'IS' | 'DS' | 'CS' | 'UI';

/** The element, after checking its VR is the one PS3.6 gives (UN: what an implicit → explicit conversion leaves). */
function checked(dataSet: DataSet, tag: number, name: string, vr: ValueKind): Element | undefined {
  const element = dataSet.elements[xtag(tag)];
  if (!element) return undefined;
  if (element.vr !== undefined && element.vr !== vr && element.vr !== 'UN' && !(vr === 'US' && element.vr === 'SS')) {
    throw new AppError('CORRUPT_IMAGE', `DICOM ${name} ${tagText(tag)} has value representation ${element.vr}; PS3.6 gives it ${vr}.`);
  }
  if (element.length === 0) return undefined; // present but empty (a type 2 attribute): treated as absent
  if (vr !== 'US' && element.length > MAX_TEXT_VALUE) {
    throw new AppError('CORRUPT_IMAGE', `DICOM ${name} ${tagText(tag)} is ${element.length} bytes long, far more than its value representation allows.`);
  }
  return element;
}

export function readText(dataSet: DataSet, tag: number, name: string, vr: 'CS' | 'UI' | 'DS' | 'IS'): string | undefined {
  const element = checked(dataSet, tag, name, vr);
  if (!element) return undefined;
  // Values are padded to even length with a space, or a NUL for UIDs (PS3.5 §6.2).
  const value = dataSet.string(xtag(tag));
  return value === undefined ? undefined : value.replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

export function readUs(dataSet: DataSet, tag: number, name: string, index = 0): number | undefined {
  const element = checked(dataSet, tag, name, 'US');
  if (!element) return undefined;
  if (element.length % 2 !== 0 || element.length < 2 * (index + 1)) {
    throw new AppError('CORRUPT_IMAGE', `DICOM ${name} ${tagText(tag)} has ${element.length} bytes; it needs ${2 * (index + 1)} (unsigned shorts).`);
  }
  return dataSet.uint16(xtag(tag), index);
}

/** The first value of a decimal or integer string (PS3.3 C.11.2.1.2: the first window is the default). */
export function readNumber(dataSet: DataSet, tag: number, name: string, vr: 'DS' | 'IS'): number | undefined {
  const value = readText(dataSet, tag, name, vr);
  if (value === undefined) return undefined;
  const first = (value.split('\\')[0] ?? '').trim();
  const number = Number(first);
  if (first === '' || !Number.isFinite(number) || (vr === 'IS' && !Number.isInteger(number))) {
    throw new AppError('CORRUPT_IMAGE', `DICOM ${name} ${tagText(tag)} is not a valid ${vr === 'DS' ? 'decimal' : 'integer'} string: ${JSON.stringify(value.slice(0, 32))}.`);
  }
  return number;
}

const US_ATTRIBUTES = [
  [0x00280002, 'samplesPerPixel', 'SamplesPerPixel'],
  [0x00280006, 'planarConfiguration', 'PlanarConfiguration'],
  [0x00280010, 'rows', 'Rows'],
  [0x00280011, 'columns', 'Columns'],
  [0x00280100, 'bitsAllocated', 'BitsAllocated'],
  [0x00280101, 'bitsStored', 'BitsStored'],
  [0x00280102, 'highBit', 'HighBit'],
  [0x00280103, 'pixelRepresentation', 'PixelRepresentation'],
] as const;

const NUMBER_ATTRIBUTES = [
  [0x00280008, 'numberOfFrames', 'NumberOfFrames', 'IS'],
  [0x00281050, 'windowCenter', 'WindowCenter', 'DS'],
  [0x00281051, 'windowWidth', 'WindowWidth', 'DS'],
  [0x00281052, 'rescaleIntercept', 'RescaleIntercept', 'DS'],
  [0x00281053, 'rescaleSlope', 'RescaleSlope', 'DS'],
] as const;

function imageAttributes(guarded: GuardedDicom, dataSet: DataSet): DicomImageAttributes {
  const attributes: DicomImageAttributes = { transferSyntaxUid: guarded.transferSyntaxUid };
  for (const [tag, key, name] of US_ATTRIBUTES) {
    const value = readUs(dataSet, tag, name);
    if (value !== undefined) attributes[key] = value;
  }
  for (const [tag, key, name, vr] of NUMBER_ATTRIBUTES) {
    const value = readNumber(dataSet, tag, name, vr);
    if (value !== undefined) attributes[key] = value;
  }
  const photometric = readText(dataSet, 0x00280004, 'PhotometricInterpretation', 'CS');
  if (photometric !== undefined) attributes.photometricInterpretation = photometric;
  if (guarded.pixelData) attributes.pixelData = { offset: guarded.pixelData.valueOffset, length: guarded.pixelData.length };
  return attributes;
}

// --- per-frame values (enhanced multi-frame objects) ---------------------------------------------------

const TAG_SHARED_FUNCTIONAL_GROUPS = 0x52009229;
const TAG_PER_FRAME_FUNCTIONAL_GROUPS = 0x52009230;
const TAG_PIXEL_VALUE_TRANSFORMATION = 0x00289145;
const TAG_FRAME_VOI_LUT = 0x00289132;

/** The data set of item `index` of a sequence, if there is one. */
function item(dataSet: DataSet, tag: number, index: number): DataSet | undefined {
  return dataSet.elements[xtag(tag)]?.items?.[index]?.dataSet;
}

/**
 * Where the Modality and VOI LUT values of frame `frame` are: an enhanced multi-frame object keeps them
 * in its functional groups (PS3.3 C.7.6.16), per frame first, then shared; other objects at the top.
 */
function frameGroup(dataSet: DataSet, frame: number, macro: number): DataSet {
  const perFrame = item(dataSet, TAG_PER_FRAME_FUNCTIONAL_GROUPS, frame);
  const fromPerFrame = perFrame && item(perFrame, macro, 0);
  if (fromPerFrame) return fromPerFrame;
  const shared = item(dataSet, TAG_SHARED_FUNCTIONAL_GROUPS, 0);
  return (shared && item(shared, macro, 0)) ?? dataSet;
}

export interface FrameTransforms {
  rescaleSlope: number;
  rescaleIntercept: number;
  window?: { center: number; width: number; function: 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID' };
}

/** Rescale (PS3.3 C.11.1) and the first VOI window (C.11.2) that apply to one frame. */
export function frameTransforms(dataSet: DataSet, frame: number): FrameTransforms {
  const modality = frameGroup(dataSet, frame, TAG_PIXEL_VALUE_TRANSFORMATION);
  const voi = frameGroup(dataSet, frame, TAG_FRAME_VOI_LUT);
  const slope = readNumber(modality, 0x00281053, 'RescaleSlope', 'DS') ?? 1;
  const intercept = readNumber(modality, 0x00281052, 'RescaleIntercept', 'DS') ?? 0;
  const center = readNumber(voi, 0x00281050, 'WindowCenter', 'DS');
  const width = readNumber(voi, 0x00281051, 'WindowWidth', 'DS');
  const transforms: FrameTransforms = { rescaleSlope: slope, rescaleIntercept: intercept };
  if ((center === undefined) !== (width === undefined)) {
    throw new AppError('CORRUPT_IMAGE', 'The DICOM image has only one of WindowCenter (0028,1050) and WindowWidth (0028,1051); PS3.3 C.11.2 requires both.');
  }
  if (center !== undefined && width !== undefined) {
    const fn = readText(voi, 0x00281056, 'VOILUTFunction', 'CS') ?? 'LINEAR';
    if (fn !== 'LINEAR' && fn !== 'LINEAR_EXACT' && fn !== 'SIGMOID') {
      throw new AppError('CORRUPT_IMAGE', `The DICOM VOILUTFunction (0028,1056) is ${JSON.stringify(fn)}; PS3.3 C.11.2.1.3 defines LINEAR, LINEAR_EXACT and SIGMOID.`);
    }
    const minimum = fn === 'LINEAR' ? 1 : Number.MIN_VALUE;
    if (!(width >= minimum)) throw new AppError('CORRUPT_IMAGE', `The DICOM WindowWidth is ${width}; PS3.3 C.11.2.1.2 requires ${fn === 'LINEAR' ? 'at least 1' : 'more than 0'}.`);
    transforms.window = { center, width, function: fn };
  }
  if (slope === 0) throw new AppError('CORRUPT_IMAGE', 'The DICOM RescaleSlope (0028,1053) is 0, which would make every pixel the same value.');
  return transforms;
}

// --- palette colour (PS3.3 C.7.6.3.1.5, C.7.6.3.1.6) ---------------------------------------------------

export interface PaletteChannel {
  entries: number;
  firstMapped: number;
  bits: number;
  data: Uint16Array;
}

/** The red, green and blue palette LUTs; segmented palettes are refused. */
export function readPalette(parsed: ParsedDicom): [PaletteChannel, PaletteChannel, PaletteChannel] {
  const { dataSet, guarded } = parsed;
  if (dataSet.elements[xtag(0x00281221)] !== undefined) {
    throw new AppError('DICOM_PIXELS_UNSUPPORTED', 'The DICOM PALETTE COLOR image uses segmented palettes (0028,1221–1223), which are not decoded; send it as RGB.');
  }
  const channel = (descriptorTag: number, dataTag: number, name: string): PaletteChannel => {
    const descriptor = dataSet.elements[xtag(descriptorTag)];
    const lut = dataSet.elements[xtag(dataTag)];
    if (!descriptor || descriptor.length !== 6 || !lut) {
      throw new AppError('CORRUPT_IMAGE', `The DICOM PALETTE COLOR image has no valid ${name} Palette Color Lookup Table Descriptor and Data (PS3.3 C.7.6.3.1.5).`);
    }
    // The first value 0 means 65536 entries; the second is US or SS (with the pixels' sign).
    const entries = dataSet.uint16(xtag(descriptorTag), 0) || 65536;
    const firstMapped = dataSet.uint16(xtag(descriptorTag), 1) ?? 0;
    const bits = dataSet.uint16(xtag(descriptorTag), 2) ?? 0;
    if (bits !== 8 && bits !== 16) throw new AppError('CORRUPT_IMAGE', `The DICOM ${name} palette has entries of ${bits} bits; PS3.3 C.7.6.3.1.5 allows 8 or 16.`);
    // 8-bit entries are packed two to a word by some writers and one per word by others.
    const bytesPerEntry = lut.length / entries;
    if (bytesPerEntry !== 2 && !(bits === 8 && bytesPerEntry === 1)) {
      throw new AppError('CORRUPT_IMAGE', `The DICOM ${name} palette holds ${lut.length} bytes for ${entries} entries of ${bits} bits.`);
    }
    const data = new Uint16Array(entries);
    const view = new DataView(guarded.bytes.buffer, guarded.bytes.byteOffset, guarded.bytes.byteLength);
    for (let i = 0; i < entries; i++) {
      data[i] = bytesPerEntry === 1 ? (guarded.bytes[lut.dataOffset + i] ?? 0) : view.getUint16(lut.dataOffset + 2 * i, guarded.littleEndian);
    }
    return { entries, firstMapped, bits, data };
  };
  return [channel(0x00281101, 0x00281201, 'Red'), channel(0x00281102, 0x00281202, 'Green'), channel(0x00281103, 0x00281203, 'Blue')];
}

// --- a description safe to log -------------------------------------------------------------------------

/**
 * What `dxflow dicom info` prints. Only technical attributes: nothing that identifies a patient, a
 * study or an instance (no names, IDs, dates, UIDs other than the transfer syntax and SOP class), so
 * the output can go to logs.
 */
export interface DicomDescription {
  transferSyntax: { uid: string; name: string | null };
  sopClass: { uid: string; name: string | null } | null;
  modality: string | null;
  rows: number | null;
  columns: number | null;
  frames: number;
  samplesPerPixel: number | null;
  photometricInterpretation: string | null;
  bitsAllocated: number | null;
  bitsStored: number | null;
  highBit: number | null;
  pixelRepresentation: 'unsigned' | 'signed' | null;
  planarConfiguration: number | null;
  pixelData: 'native' | 'encapsulated' | 'absent';
  /** Encapsulated pixel data: fragment count. */
  fragments: number | null;
  dataSetEncoding: { explicitVr: boolean; littleEndian: boolean; deflated: boolean };
  elements: number;
}

export function describeDicom(parsed: ParsedDicom): DicomDescription {
  const { attributes: a, dataSet, guarded } = parsed;
  const sopClassUid = readText(dataSet, 0x00080016, 'SOPClassUID', 'UI') ?? readText(dataSet, 0x00020002, 'MediaStorageSOPClassUID', 'UI');
  const modality = readText(dataSet, 0x00080060, 'Modality', 'CS');
  const pixelData = guarded.pixelData;
  return {
    transferSyntax: { uid: a.transferSyntaxUid, name: transferSyntaxName(a.transferSyntaxUid) ?? null },
    sopClass: sopClassUid === undefined ? null : { uid: sopClassUid, name: sopClassName(sopClassUid) ?? null },
    modality: modality ?? null,
    rows: a.rows ?? null,
    columns: a.columns ?? null,
    frames: a.numberOfFrames ?? 1,
    samplesPerPixel: a.samplesPerPixel ?? null,
    photometricInterpretation: a.photometricInterpretation ?? null,
    bitsAllocated: a.bitsAllocated ?? null,
    bitsStored: a.bitsStored ?? null,
    highBit: a.highBit ?? null,
    pixelRepresentation: a.pixelRepresentation === undefined ? null : a.pixelRepresentation === 1 ? 'signed' : 'unsigned',
    planarConfiguration: a.planarConfiguration ?? null,
    pixelData: pixelData === undefined ? 'absent' : pixelData.length === undefined ? 'encapsulated' : 'native',
    fragments: pixelData?.fragments?.length ?? null,
    dataSetEncoding: { explicitVr: guarded.explicitVr, littleEndian: guarded.littleEndian, deflated: guarded.deflated },
    elements: guarded.elements,
  };
}

import { AppError } from '../../core/errors.ts';
import { guardDicom, hasPart10Prefix } from '../guard.ts';
import { shiftDA, shiftDT } from './dates.ts';
import { type DcmDataset, type DcmDict, type DcmElement, dcmjs } from './dcmjs.ts';
import { type BasicAction, isRepeatingGroup, type ProfileRow, profileRow } from './profile-table.ts';
import { dateShiftDays, type DeidentificationKey, normaliseUid, replacementUid } from './uid.ts';

// De-identification of one DICOM Part 10 instance with the Basic Application Level Confidentiality
// Profile (PS3.15 Annex E, E.2 and Table E.1-1) and, on request, its options Retain Longitudinal
// Temporal Information (Full Dates or Modified Dates, E.3.6), Retain Patient Characteristics (E.3.7)
// and Retain Safe Private (E.3.10, by an explicit list only).
//
// What is done, everywhere in the data set including every item of every sequence at any depth:
//   - each attribute of Table E.1-1 gets its action (profile-table.ts); compound codes are resolved
//     by resolveAction below;
//   - private attributes (odd groups) are removed, with their private creators, unless listed as safe;
//   - the curve groups 50xx and the overlay groups 60xx are removed whole (the table removes Curve
//     Data, Overlay Data and Overlay Comments; the rest of an overlay group only describes them);
//   - group lengths (gggg,0000) are dropped, as they would no longer be right;
//   - rules beyond the table, for attributes it does not list: any person name (PN) is emptied, any
//     free text (LT, ST, UT) is replaced by a dummy, a public attribute whose VR is unknown (UN) is
//     removed, and a UID that is neither a well-known DICOM UID nor held by an attribute that names a
//     class, a transfer syntax or a coding scheme is replaced like an attribute with action U;
//   - with the Modified Dates option every DA and DT that stays (the table's longitudinal rows, and
//     dates the table does not list) moves by the patient's shift, so no real date remains beside
//     moved ones; a value that cannot be moved exactly gets the Basic Profile action instead;
//   - Patient Identity Removed, De-identification Method (text and CID 7050 codes) and Longitudinal
//     Temporal Information Modified are set.
// What is not done: pixel data is not inspected. An instance that may show identity in its pixels
// (Burned In Annotation YES, or absent where text in the image is common) is quarantined instead of
// released, and so is an encapsulated document, whose content cannot be inspected here. Text inside
// compressed pixel streams (a JPEG comment segment) is not looked at.

export type DatesOption = 'remove' | 'shift' | 'keep';

/**
 * A private attribute kept by the Retain Safe Private option. With `creator`, `element` is the low
 * byte (0x00-0xFF) of the element within that creator's block, wherever the block was reserved; without
 * it, `element` is the full element number and the tag matches exactly.
 */
export interface SafePrivateTag {
  group: number;
  element: number;
  creator?: string;
}

export interface DeidentifyOptions {
  key: DeidentificationKey;
  /**
   * Dates and times: 'remove' (Basic Profile, the default); 'shift' moves every date of the patient by
   * the same whole number of days (Retain Longitudinal Temporal Information, Modified Dates Option);
   * 'keep' retains them unchanged (Full Dates Option).
   */
  dates?: DatesOption;
  /** Retain Patient Characteristics Option: sex, age, size, weight, ethnic group, smoking and pregnancy status. */
  retainPatientCharacteristics?: boolean;
  /** Private attributes to keep; every other private attribute is removed. */
  safePrivate?: readonly SafePrivateTag[];
  /** Largest input accepted, in bytes (DXFLOW_LIMITS_MAX_BYTES); default 64 MiB. */
  maxBytes?: number;
}

export interface DeidentifySummary {
  removed: number;
  emptied: number;
  replacedWithDummy: number;
  uidsReplaced: number;
  datesShifted: number;
  privateRemoved: number;
  privateKept: number;
  /** The CID 7050 codes written to De-identification Method Code Sequence. */
  methodCodes: string[];
}

export type DeidentifyOutcome =
  | { status: 'released'; bytes: Buffer; summary: DeidentifySummary }
  | { status: 'quarantined'; reason: string };

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const MAX_DEPTH = 32;

/** CID 7050 "De-identification Method" codes (PS3.16), scheme DCM. */
export const DEID_CODES = {
  basic: { value: '113100', meaning: 'Basic Application Confidentiality Profile' },
  fullDates: { value: '113106', meaning: 'Retain Longitudinal Temporal Information Full Dates Option' },
  modifiedDates: { value: '113107', meaning: 'Retain Longitudinal Temporal Information Modified Dates Option' },
  patientCharacteristics: { value: '113108', meaning: 'Retain Patient Characteristics Option' },
  safePrivate: { value: '113111', meaning: 'Retain Safe Private Option' },
} as const;

/** Secondary Capture Image Storage SOP classes (PS3.4 B.5): screenshots, scanned documents, photographs. */
const SECONDARY_CAPTURE = new Set([
  '1.2.840.10008.5.1.4.1.1.7',
  '1.2.840.10008.5.1.4.1.1.7.1',
  '1.2.840.10008.5.1.4.1.1.7.2',
  '1.2.840.10008.5.1.4.1.1.7.3',
  '1.2.840.10008.5.1.4.1.1.7.4',
]);
/** Modalities whose images commonly carry burned-in text (ultrasound, secondary capture, other). */
const BURNED_IN_MODALITIES = new Set(['US', 'SC', 'OT']);

/**
 * Attributes that some common IOD requires with a value (Type 1, or Type 1C with a usually met
 * condition): Acquisition DateTime (Enhanced CT/MR/XA Image, for ORIGINAL images), Device Serial Number
 * (Enhanced General Equipment), Start/End Acquisition DateTime, Instruction Performed DateTime. A
 * compound code that allows D gives them a dummy; everywhere else the compound code empties them.
 */
const NEEDS_VALUE: ReadonlySet<string> = new Set(['0008002A', '00181000', '00189516', '00189517', '00189919']);
/**
 * Content Date and Time are Type 1 in most IODs that hold them (Multi-frame Functional Groups, SR
 * Document General, Waveform Identification) but only Type 2C in General Image: they get a dummy
 * except in a classic image (pixel data without functional groups). Observation DateTime is Type 1C
 * in the SR Document Relationship macro: a dummy in a structured report.
 */
function needsValueIn(dataset: DcmDataset): ReadonlySet<string> {
  const needs = new Set(NEEDS_VALUE);
  const classicImage = dataset['7FE00010'] !== undefined && dataset['52009229'] === undefined;
  if (!classicImage) needs.add('00080023').add('00080033');
  if (dataset['0040A730'] !== undefined) needs.add('0040A032');
  return needs;
}

/**
 * Sequences with action D whose items are codes that identify a person or an institution (the code
 * value is an employee number or an institution code): recursing would keep the code, so they are
 * emptied instead. Other D sequences (Content Sequence, Verifying Observer Sequence, Graphic
 * Annotation Sequence...) keep their structure and have every item processed by the table.
 */
const IDENTIFYING_CODE_SEQUENCES = new Set(['00401101', '00080082']);

/**
 * Unlisted UI attributes that name a SOP class, a transfer syntax, a coding scheme, a context group or
 * a software version, never an instance of the patient's data: kept. Every other unlisted UID (for
 * example SOP Instance UID of Concatenation Source) is replaced like one with action U.
 */
const CLASS_UID_ATTRIBUTES = new Set([
  '00000002', '00000003', '00020002', '00020010', '00020012', '00041510', '00041512', '0004151A', '00080016',
  '0008001A', '0008001B', '00080062', '0008010C', '0008010D', '00080117', '00080118', '0008040E', '00081150',
  '0008115A', '00083002', '00089123', '00340003', '04000010', '04000510', '3010001F', '30100052', '30100053',
]);

/** The root of the UIDs defined by the standard itself (PS3.6 Annex A). */
const WELL_KNOWN_ROOT = '1.2.840.10008.';

const FREE_TEXT = new Set(['LT', 'ST', 'UT']);
const STRING_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT']);
const NUMBER_VRS = new Set(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'SV', 'UV', 'DS', 'IS']);
const BINARY_VRS = new Set(['OB', 'OW', 'OD', 'OF', 'OL', 'OV', 'UN']);
const DUMMY_TEXT = 'ANONYMIZED';

/** The action applied to one element, after options and compound codes are resolved. */
type Action = 'K' | 'X' | 'Z' | 'D' | 'U' | 'RECURSE' | 'SHIFT';

/**
 * Resolves a Table E.1-1 code to one action for `tag` (PS3.15 E.1.1). The rule is "no dummy unless an
 * IOD demands a value, and never less than present-but-empty otherwise":
 *   - X/Z: Z. Zero length carries no information and is valid for a Type 2 and a Type 3 attribute, so
 *     the attribute stays wherever an IOD lists it;
 *   - X/D, X/Z/D, Z/D: D (a dummy) for the attributes that a common IOD requires with a value
 *     (`needsValue`), else Z. Z rather than X for X/D: removal is no more private than an empty value,
 *     and some X/D attributes are Type 2 in an IOD (RT Plan Date and Time in RT General Plan), where
 *     removing them would break the object;
 *   - X/Z/U*: the sequence is kept and its items processed, which replaces the UIDs in them (U*) and
 *     keeps the references between instances;
 *   - C (clean) has no cleaner here for free text, so it removes (X).
 */
export function resolveAction(code: BasicAction, tag: string, needsValue: ReadonlySet<string> = NEEDS_VALUE): Exclude<Action, 'SHIFT'> {
  switch (code) {
    case 'K':
    case 'X':
    case 'Z':
    case 'D':
    case 'U':
      return code;
    case 'C':
      return 'X';
    case 'X/Z':
      return 'Z';
    case 'X/D':
    case 'X/Z/D':
    case 'Z/D':
      return needsValue.has(tag) ? 'D' : 'Z';
    case 'X/Z/U*':
      return 'RECURSE';
  }
}

function actionFor(row: ProfileRow, tag: string, context: Context): Action {
  if (row.longitudinal === 'K' && context.dates === 'keep') return 'K';
  if (row.longitudinal === 'K' && context.dates === 'shift') return 'SHIFT';
  if (row.patientCharacteristics === 'K' && context.retainPatientCharacteristics) return 'K';
  return resolveAction(row.basic, tag, context.needsValue);
}

/** Parses "GGGG,EEEE" (an exact tag) or "GGGG,CREATOR,EE" (element EE of the block reserved by CREATOR). */
export function parseSafePrivate(text: string): SafePrivateTag {
  const trimmed = text.trim().replace(/^\((.*)\)$/, '$1');
  const first = trimmed.indexOf(',');
  const last = trimmed.lastIndexOf(',');
  const hex = (s: string, digits: number): number | undefined => (new RegExp(`^[0-9a-fA-F]{1,${digits}}$`).test(s.trim()) ? Number.parseInt(s.trim(), 16) : undefined);
  const group = first < 0 ? undefined : hex(trimmed.slice(0, first), 4);
  let parsed: SafePrivateTag | undefined;
  if (group !== undefined && first === last) {
    const element = hex(trimmed.slice(first + 1), 4);
    if (element !== undefined && element >= 0x1000) parsed = { group, element };
  } else if (group !== undefined) {
    const creator = trimmed.slice(first + 1, last).trim().replace(/^"(.*)"$/, '$1').trim();
    const element = hex(trimmed.slice(last + 1), 2);
    if (creator !== '' && element !== undefined) parsed = { group, creator, element };
  }
  if (parsed === undefined || parsed.group % 2 === 0 || parsed.group <= 0x0007 || parsed.group === 0xffff) {
    throw new AppError('INVALID_REQUEST', `"${text}" is not a private tag: write GGGG,EEEE (for example 0019,100C) or GGGG,CREATOR,EE (for example 0019,GEMS_ACQU_01,0C), with an odd group.`);
  }
  return parsed;
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

function asText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (value instanceof ArrayBuffer) return Buffer.from(value).toString('latin1');
  if (typeof value === 'object' && value !== null && 'Alphabetic' in value) return String((value as { Alphabetic: unknown }).Alphabetic ?? '');
  return '';
}

function firstText(element: DcmElement | undefined): string {
  return asText(element?.Value?.[0]).replace(/\0+$/, '').trim();
}

/** Why an instance must not be released automatically, or undefined when it may be. */
export function quarantineReason(dataset: DcmDataset): string | undefined {
  const burnedIn = firstText(dataset['00280301']).toUpperCase();
  const modality = firstText(dataset['00080060']).toUpperCase();
  const sopClass = normaliseUid(firstText(dataset['00080016']));
  if (burnedIn === 'YES') return 'Burned In Annotation (0028,0301) is YES: the pixels show identifying text';
  if (dataset['00420011'] !== undefined) return 'the instance encapsulates a document (0042,0011) whose content cannot be inspected';
  if (burnedIn === '') {
    if (BURNED_IN_MODALITIES.has(modality)) return `Burned In Annotation (0028,0301) is absent and modality ${modality} commonly has text burned into the pixels`;
    if (SECONDARY_CAPTURE.has(sopClass)) return 'Burned In Annotation (0028,0301) is absent on a Secondary Capture image, which commonly has text burned into the pixels';
  }
  return undefined;
}

interface Context {
  key: DeidentificationKey;
  dates: DatesOption;
  retainPatientCharacteristics: boolean;
  safePrivate: readonly SafePrivateTag[];
  shiftDays: number;
  needsValue: ReadonlySet<string>;
  summary: DeidentifySummary;
}

function dummyElement(element: DcmElement, context: Context): DcmElement {
  const vr = element.vr;
  if (vr === 'UI') return replaceUids(element, context);
  if (vr === 'PN') return { vr, Value: [{ Alphabetic: DUMMY_TEXT }] };
  if (vr === 'DA') return { vr, Value: ['19000101'] };
  if (vr === 'TM') return { vr, Value: ['000000'] };
  if (vr === 'DT') return { vr, Value: ['19000101000000'] };
  if (vr === 'AS') return { vr, Value: ['000D'] };
  if (vr === 'UR') return { vr, Value: ['urn:dxflow:anonymized'] };
  if (NUMBER_VRS.has(vr)) return { vr, Value: [0] };
  if (BINARY_VRS.has(vr)) {
    const first = element.Value?.[0];
    const length = first instanceof ArrayBuffer ? Math.max(2, first.byteLength + (first.byteLength % 2)) : 2;
    return { vr, Value: [new ArrayBuffer(length)] };
  }
  if (STRING_VRS.has(vr)) return { vr, Value: [DUMMY_TEXT] };
  // AT and anything unforeseen: no dummy can be formed without guessing, so it is emptied.
  return { vr, Value: [] };
}

function replaceUids(element: DcmElement, context: Context): DcmElement {
  const values = (element.Value ?? []).map((v) => {
    const original = normaliseUid(asText(v));
    // Empty stays empty; a well-known DICOM UID (a Talairach frame of reference, say) names no one.
    if (original === '' || original.startsWith(WELL_KNOWN_ROOT)) return original;
    context.summary.uidsReplaced++;
    return replacementUid(context.key, original);
  });
  // A UID read without its VR (implicit VR, unknown tag) comes as bytes; it is written back as UI.
  return { vr: 'UI', Value: values };
}

function shiftElement(element: DcmElement, context: Context): DcmElement | undefined {
  const vr = element.vr;
  if (vr === 'TM' || vr === 'SH') return element; // a time of day, or the UTC offset: whole-day shifts leave them right
  const shift = vr === 'DA' ? shiftDA : vr === 'DT' ? shiftDT : undefined;
  if (shift === undefined) return undefined;
  const values: string[] = [];
  for (const v of element.Value ?? []) {
    const text = asText(v).trim();
    if (text === '') {
      values.push('');
      continue;
    }
    const moved = shift(text, context.shiftDays);
    if (moved === undefined) return undefined;
    values.push(moved);
  }
  context.summary.datesShifted++;
  return { vr, Value: values };
}

function privateCreators(dataset: DcmDataset): Map<string, string> {
  const creators = new Map<string, string>();
  for (const tag of Object.keys(dataset)) {
    const group = Number.parseInt(tag.slice(0, 4), 16);
    const element = Number.parseInt(tag.slice(4), 16);
    if (group % 2 === 1 && element >= 0x10 && element <= 0xff) creators.set(`${hex4(group)}${hex4(element).slice(2)}`, firstText(dataset[tag]));
  }
  return creators;
}

/** The private data elements to keep in this data set, and the creator elements their blocks need. */
function keptPrivate(dataset: DcmDataset, context: Context): Set<string> {
  const kept = new Set<string>();
  if (context.safePrivate.length === 0) return kept;
  const creators = privateCreators(dataset);
  for (const tag of Object.keys(dataset)) {
    const group = Number.parseInt(tag.slice(0, 4), 16);
    const element = Number.parseInt(tag.slice(4), 16);
    if (group % 2 === 0 || element < 0x1000) continue;
    const block = element >> 8;
    const creatorTag = `${hex4(group)}00${block.toString(16).toUpperCase().padStart(2, '0')}`;
    const creator = creators.get(`${hex4(group)}${block.toString(16).toUpperCase().padStart(2, '0')}`);
    const safe = context.safePrivate.some((s) => s.group === group && (s.creator === undefined ? s.element === element : creator !== undefined && s.creator === creator && s.element === (element & 0xff)));
    if (safe) {
      kept.add(tag);
      if (dataset[creatorTag] !== undefined) kept.add(creatorTag);
    }
  }
  return kept;
}

function processItems(element: DcmElement, context: Context, depth: number): DcmElement {
  const items = (element.Value ?? []).map((item) => processDataset(item as DcmDataset, context, depth + 1));
  return { vr: 'SQ', Value: items };
}

function processDataset(dataset: DcmDataset, context: Context, depth: number): DcmDataset {
  if (depth > MAX_DEPTH) throw new AppError('CORRUPT_IMAGE', `The DICOM data set nests sequences more than ${MAX_DEPTH} deep; it cannot be de-identified safely.`);
  const out: DcmDataset = {};
  const privateKeep = keptPrivate(dataset, context);
  const summary = context.summary;
  for (const tag of Object.keys(dataset).sort()) {
    const element = dataset[tag];
    if (element === undefined) continue;
    const group = Number.parseInt(tag.slice(0, 4), 16);
    if (tag.slice(4) === '0000') continue; // group length: stale once anything changes
    if (group % 2 === 1) {
      if (privateKeep.has(tag)) {
        out[tag] = element;
        summary.privateKept++;
      } else {
        summary.privateRemoved++;
      }
      continue;
    }
    if (isRepeatingGroup(group, 0x6000) || isRepeatingGroup(group, 0x5000)) {
      summary.removed++;
      continue;
    }
    const row = profileRow(tag);
    let action: Action;
    if (row !== undefined) action = actionFor(row, tag, context);
    else if (element.vr === 'PN') action = 'Z';
    else if (FREE_TEXT.has(element.vr)) action = 'D';
    else if (element.vr === 'UN') action = 'X';
    else if (element.vr === 'UI') action = CLASS_UID_ATTRIBUTES.has(tag) || (element.Value ?? []).every((v) => normaliseUid(asText(v)).startsWith(WELL_KNOWN_ROOT) || normaliseUid(asText(v)) === '') ? 'K' : 'U';
    else if (element.vr === 'SQ') action = 'RECURSE';
    else if (context.dates === 'shift' && (element.vr === 'DA' || element.vr === 'DT')) action = 'SHIFT';
    else action = 'K';

    if (action === 'SHIFT') {
      const shifted = shiftElement(element, context);
      if (shifted !== undefined) {
        out[tag] = shifted;
        continue;
      }
      // Not a complete date (or a VR that cannot be shifted): the Basic Profile action instead.
      action = row === undefined ? 'X' : resolveAction(row.basic, tag, context.needsValue);
    }
    if (element.vr === 'SQ') {
      if (action === 'X') summary.removed++;
      else if (action === 'Z' || (action === 'D' && IDENTIFYING_CODE_SEQUENCES.has(tag))) {
        summary.emptied++;
        out[tag] = { vr: 'SQ', Value: [] };
      } else {
        // K, D, U*, RECURSE: the items are processed by the same rules. D on a sequence replaces its
        // content by what the table makes of it, attribute by attribute.
        out[tag] = processItems(element, context, depth);
      }
      continue;
    }
    switch (action) {
      case 'K':
        out[tag] = element;
        break;
      case 'X':
        summary.removed++;
        break;
      case 'Z':
      case 'RECURSE':
        summary.emptied++;
        out[tag] = { vr: element.vr, Value: [] };
        break;
      case 'D':
        summary.replacedWithDummy++;
        out[tag] = dummyElement(element, context);
        break;
      case 'U':
        out[tag] = replaceUids(element, context);
        break;
    }
  }
  return out;
}

/** The key by which a patient's date shift is chosen: the original Patient ID, else name and birth date, else the study. */
function patientKey(dataset: DcmDataset): string {
  const id = firstText(dataset['00100020']);
  if (id !== '') return `id:${id}`;
  const name = firstText(dataset['00100010']);
  const birth = firstText(dataset['00100030']);
  if (name !== '' || birth !== '') return `name:${name}|birth:${birth}`;
  return `study:${normaliseUid(firstText(dataset['0020000D']))}`;
}

function code(value: string, meaning: string): DcmDataset {
  return {
    '00080100': { vr: 'SH', Value: [value] },
    '00080102': { vr: 'SH', Value: ['DCM'] },
    '00080104': { vr: 'LO', Value: [meaning] },
  };
}

function setDeidentificationAttributes(dataset: DcmDataset, context: Context): void {
  const codes: { value: string; meaning: string }[] = [DEID_CODES.basic];
  const methods = ['DICOM PS3.15 Annex E Basic Application Confidentiality Profile'];
  if (context.dates === 'shift') {
    codes.push(DEID_CODES.modifiedDates);
    methods.push('Dates moved by a per-patient number of days (E.3.6)');
  } else if (context.dates === 'keep') {
    codes.push(DEID_CODES.fullDates);
    methods.push('Dates and times retained (E.3.6 Full Dates)');
  }
  if (context.retainPatientCharacteristics) {
    codes.push(DEID_CODES.patientCharacteristics);
    methods.push('Patient characteristics retained (E.3.7)');
  }
  if (context.summary.privateKept > 0) {
    codes.push(DEID_CODES.safePrivate);
    methods.push('Listed safe private attributes retained (E.3.10)');
  }
  methods.push('dxflow: UIDs replaced by keyed HMAC-SHA256 under 2.25');
  // A data set de-identified before keeps its earlier method entries; this run's are added after them.
  const earlierMethods = (dataset['00120063']?.Value ?? []).map(asText).filter((m) => m !== '' && !methods.includes(m));
  const earlierCodes = ((dataset['00120064']?.Value ?? []) as DcmDataset[]).filter((item) => !codes.some((c) => c.value === firstText(item['00080100'])));
  dataset['00120062'] = { vr: 'CS', Value: ['YES'] };
  dataset['00120063'] = { vr: 'LO', Value: [...earlierMethods, ...methods] };
  dataset['00120064'] = { vr: 'SQ', Value: [...earlierCodes, ...codes.map((c) => code(c.value, c.meaning))] };
  dataset['00280303'] = { vr: 'CS', Value: [context.dates === 'shift' ? 'MODIFIED' : context.dates === 'keep' ? 'UNMODIFIED' : 'REMOVED'] };
  context.summary.methodCodes = codes.map((c) => c.value);
}

/**
 * Reads a Part 10 file with dcmjs, behind the structural guard that every DICOM input passes first
 * (guard.ts: lengths, nesting, element count, deflate expansion and time are bounded before any
 * library builds objects from the bytes), mapping failures to the platform's error codes.
 */
export function readPart10(input: Uint8Array, maxBytes = DEFAULT_MAX_BYTES): DcmDict {
  if (input.byteLength > maxBytes) {
    throw new AppError('FILE_TOO_LARGE', `The DICOM file is ${input.byteLength} bytes, above the limit of ${maxBytes} bytes (DXFLOW_LIMITS_MAX_BYTES).`);
  }
  if (!hasPart10Prefix(input)) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'The file is not a DICOM Part 10 file (no "DICM" after the 128-byte preamble); export it from the source system as a DICOM file.');
  }
  // Pixels are not decoded here, so the pixel limit does not apply; the walk checks the whole file.
  const guarded = guardDicom(input, { maxPixels: Number.MAX_SAFE_INTEGER, maxBytes }, 'full');
  // A deflated data set comes back inflated, under Explicit VR Little Endian.
  const bytes = guarded.bytes;
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  try {
    return dcmjs().data.DicomMessage.readFile(copy);
  } catch (e) {
    throw new AppError('CORRUPT_IMAGE', `The DICOM file cannot be parsed: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * De-identifies one DICOM Part 10 instance. Returns the new file's bytes, or a quarantine decision
 * (nothing is produced then). Throws an AppError for input that is not DICOM or cannot be parsed.
 */
export function deidentifyDicom(input: Uint8Array, options: DeidentifyOptions): DeidentifyOutcome {
  const parsed = readPart10(input, options.maxBytes);
  const reason = quarantineReason(parsed.dict);
  if (reason !== undefined) return { status: 'quarantined', reason };

  const context: Context = {
    key: options.key,
    dates: options.dates ?? 'remove',
    retainPatientCharacteristics: options.retainPatientCharacteristics ?? false,
    safePrivate: options.safePrivate ?? [],
    shiftDays: 0,
    needsValue: needsValueIn(parsed.dict),
    summary: { removed: 0, emptied: 0, replacedWithDummy: 0, uidsReplaced: 0, datesShifted: 0, privateRemoved: 0, privateKept: 0, methodCodes: [] },
  };
  if (context.dates === 'shift') context.shiftDays = dateShiftDays(options.key, patientKey(parsed.dict));

  const dict = processDataset(parsed.dict, context, 0);
  const meta = processDataset(parsed.meta, context, 0);
  setDeidentificationAttributes(dict, context);
  // The meta header names the same instance as the data set (PS3.10 7.1); a file where the two
  // differed is brought into line rather than carrying a second replaced UID.
  const sopInstance = dict['00080018'];
  if (sopInstance?.Value?.[0] !== undefined) meta['00020003'] = { vr: 'UI', Value: [sopInstance.Value[0]] };

  const out = new (dcmjs().data.DicomDict)(meta);
  out.dict = dict;
  let bytes: Buffer;
  try {
    bytes = Buffer.from(out.write());
  } catch (e) {
    throw new AppError('CORRUPT_IMAGE', `The de-identified data set cannot be encoded: ${(e as Error).message}`, { cause: e });
  }
  verifyOutput(bytes, context);
  return { status: 'released', bytes, summary: context.summary };
}

/** The refusal of a quarantined instance as an error (DICOM_QUARANTINED), for callers that cannot return the outcome. */
export function quarantineError(reason: string): AppError {
  return new AppError('DICOM_QUARANTINED', `The DICOM instance was not de-identified: ${reason}.`, { details: { reason } });
}

/** The de-identified bytes, or DICOM_QUARANTINED. */
export function releasedBytes(outcome: DeidentifyOutcome): Buffer {
  if (outcome.status === 'quarantined') throw quarantineError(outcome.reason);
  return outcome.bytes;
}

/** Reads the output back: it must parse, carry the de-identification marks and no unlisted private attribute. */
function verifyOutput(bytes: Buffer, context: Context): void {
  let reread: DcmDict;
  try {
    reread = dcmjs().data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
  } catch (e) {
    throw new AppError('INTERNAL', `The de-identified file does not read back: ${(e as Error).message}`, { cause: e });
  }
  if (firstText(reread.dict['00120062']) !== 'YES') throw new AppError('INTERNAL', 'The de-identified file lost Patient Identity Removed.');
  const privateTop = Object.keys(reread.dict).filter((t) => Number.parseInt(t.slice(0, 4), 16) % 2 === 1);
  if (context.safePrivate.length === 0 && privateTop.length > 0) throw new AppError('INTERNAL', `The de-identified file still holds private attributes (${privateTop.join(', ')}).`);
}

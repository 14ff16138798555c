import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type DcmDataset, type DcmElement, dcmjs } from '../../src/dicom/deidentify/dcmjs.ts';

// Inputs for the de-identification tests: pydicom's public test files (Debian python3-pydicom), and
// synthetic instances with identifying values planted in many places, built here with dcmjs. Every
// planted value is fictitious.

export const PYDICOM_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

export function pydicomFilesMissing(): string | false {
  return existsSync(`${PYDICOM_FILES}/CT_small.dcm`) ? false : `pydicom's test files are not installed (${PYDICOM_FILES}); install python3-pydicom`;
}

export function toolMissing(tool: 'dcmdump' | 'dciodvfy'): string | false {
  const probe = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  return probe.status === 0 ? false : `${tool} is not installed (${tool === 'dcmdump' ? 'dcmtk' : 'dicom3tools'}); skipping the check it does`;
}

/** Parse errors of dcmtk's dcmdump on `file`: its exit status and the "E:" lines it prints. */
export function dcmdumpErrors(file: string): string[] {
  const run = spawnSync('dcmdump', ['-q', file], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const errors = `${run.stderr}`.split('\n').filter((l) => /^E:/.test(l));
  if (run.status !== 0 && errors.length === 0) errors.push(`dcmdump exited with ${run.status}`);
  return errors;
}

/** dciodvfy's error lines, with UIDs and numbers normalised so that lines of input and output compare. */
export function dciodvfyErrors(file: string): Set<string> {
  const run = spawnSync('dciodvfy', [file], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const lines = `${run.stdout}\n${run.stderr}`.split('\n').filter((l) => l.startsWith('Error'));
  return new Set(lines.map((l) => l.replace(/\d+(\.\d+)+/g, 'UID')));
}

export function readDataset(bytes: Uint8Array): { meta: DcmDataset; dict: DcmDataset } {
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const parsed = dcmjs().data.DicomMessage.readFile(copy);
  return { meta: parsed.meta, dict: parsed.dict };
}

export function text(element: DcmElement | undefined, index = 0): string {
  const v = element?.Value?.[index];
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number') return String(v);
  if (typeof v === 'object' && v !== null && 'Alphabetic' in v) return String((v as { Alphabetic: unknown }).Alphabetic ?? '');
  return '';
}

export function items(element: DcmElement | undefined): DcmDataset[] {
  return (element?.Value ?? []) as DcmDataset[];
}

/** Every tag at every depth of `dataset`. */
export function allTags(dataset: DcmDataset): string[] {
  return Object.entries(dataset).flatMap(([tag, el]) => [tag, ...(el.vr === 'SQ' ? items(el).flatMap(allTags) : [])]);
}

/**
 * Values in a real file that identify the patient, the study or the staff, collected at every depth
 * independently of the profile table: every person name, the values of a fixed list of identifying
 * attributes (IDs, dates, institution, descriptions, comments, instance UIDs), every string of a
 * private attribute. Values shorter than 4 characters are left out, as a byte search for them would
 * match unrelated bytes.
 */
const IDENTIFYING = new Set([
  '00100020', '00100021', '00101000', '00100030', '00080050', '00200010', '00080080', '00080081', '00081010', '00081040',
  '00080020', '00080021', '00080022', '00080023', '00080012', '0008002A', '00081030', '0008103E', '00181030', '00181000',
  '00204000', '00104000', '001021B0', '00401001', '00400253', '0040A160', '0020000D', '0020000E', '00080018', '00200052',
  '00081155', '00020003', '00080014', '300A0002', '300A0003', '300A0006', '30060002', '30060008',
]);

export function identifyingValues(dataset: DcmDataset): string[] {
  const found = new Set<string>();
  const visit = (ds: DcmDataset): void => {
    for (const [tag, el] of Object.entries(ds)) {
      if (el.vr === 'SQ') {
        items(el).forEach(visit);
        continue;
      }
      const isPrivate = Number.parseInt(tag.slice(0, 4), 16) % 2 === 1;
      const strings = (el.Value ?? []).map((_, i) => text(el, i)).filter((s) => s !== '');
      if (el.vr === 'PN' || IDENTIFYING.has(tag) || (isPrivate && ['LO', 'SH', 'ST', 'LT', 'UT', 'PN', 'CS', 'DA', 'TM', 'UI'].includes(el.vr))) {
        for (const s of strings) if (s.replace(/[\0 ]+$/, '').length >= 4) found.add(s.replace(/[\0 ]+$/, ''));
      }
    }
  };
  visit(dataset);
  return [...found];
}

/** Attributes naming a class or a syntax, retained as they are. */
const CLASS_UIDS = new Set(['00020002', '00020010', '00020012', '00080016', '00081150']);

/**
 * String values of the public attributes outside that list (manufacturer, model, implementation
 * class UID...), which the profile retains: an identifying value that is part of one of them (an
 * Institution Name "TOSHIBA" beside a Manufacturer "TOSHIBA_MEC") cannot be looked for in the bytes.
 */
export function retainedValues(dataset: DcmDataset): string[] {
  const found: string[] = [];
  const visit = (ds: DcmDataset): void => {
    for (const [tag, el] of Object.entries(ds)) {
      if (el.vr === 'SQ') {
        items(el).forEach(visit);
        continue;
      }
      if (Number.parseInt(tag.slice(0, 4), 16) % 2 === 1 || el.vr === 'PN' || IDENTIFYING.has(tag)) continue;
      // Dates, times and instance UIDs are never retained as such; class UIDs are.
      if (['DA', 'DT', 'TM'].includes(el.vr) || (el.vr === 'UI' && !CLASS_UIDS.has(tag))) continue;
      for (let i = 0; i < (el.Value ?? []).length; i++) if (text(el, i) !== '') found.push(text(el, i));
    }
  };
  visit(dataset);
  return found;
}

/** Top-level identifying attributes of `dataset` that have a value, by tag. */
export function identifyingAttributes(dataset: DcmDataset): Map<string, string> {
  const found = new Map<string, string>();
  for (const [tag, el] of Object.entries(dataset)) {
    if ((IDENTIFYING.has(tag) || el.vr === 'PN') && text(el) !== '') found.set(tag, text(el));
  }
  return found;
}

/** The planted values that must not survive de-identification (none of them appears by chance). */
export const PLANTED = {
  patientName: 'Doe^Planted^Quincy',
  patientId: 'PLANTED-PID-7781',
  issuer: 'PLANTED-ISSUER',
  otherId: 'PLANTED-OTHER-7782',
  otherIdInSequence: 'PLANTED-OTHER-7783',
  otherName: 'Roe^Planted^Alias',
  address: 'Planted Lane 9, Plantville',
  phone: '555-0100-PLANT',
  birthDate: '19650314',
  accession: 'PLANTACC4711',
  studyId: 'PLSTUDY9',
  institution: 'Planted General Hospital',
  institutionAddress: 'Planted Street 1, Plantville',
  department: 'Planted Radiology Dept',
  referrer: 'Referrer^Planted',
  performer: 'Performer^Planted',
  operator: 'Operator^Planted',
  station: 'PLANTSTATION1',
  serial: 'PLANTSERIAL-99',
  studyDescription: 'Planted study description',
  seriesDescription: 'Planted series description',
  protocol: 'Planted protocol Quincy',
  history: 'History mentions Quincy Doe at Plantville',
  patientComment: 'Patient comment: planted note about Quincy',
  imageComment: 'Image comment: Quincy Doe planted',
  studyComment: 'Study comment: planted Quincy',
  nestedReferrer: 'Nested^Referrer^Planted',
  nestedPerson: 'Nested^Person^Planted',
  deepName: 'Deep^Nested^Planted',
  unlistedName: 'Unlisted^Planted^Name',
  requestedProcedureId: 'PLREQPROC77',
  spsId: 'PLSPS88',
  privateName: 'PLANTED-PRIVATE-NAME Quincy',
  privateNested: 'Private^Nested^Planted',
  overlayComment: 'PLANTED-OVERLAY-COMMENT',
  overlayDescription: 'PLANTED-OVERLAY-DESC',
  curveLabel: 'PLANTED-CURVE-LABEL',
  sourceAe: 'PLANTEDAE',
  ethnicGroup: 'PLANTEDETHNIC',
} as const;

export interface SynthOptions {
  study?: string;
  series?: string;
  sop: string;
  frameOfReference?: string;
  /** The SOP Instance UID this instance references in Referenced Image Sequence. */
  references?: string;
  patientId?: string;
  modality?: string;
  sopClass?: string;
  burnedIn?: 'YES' | 'NO';
  /** StudyDate, SeriesDate; AcquisitionDate and ContentDate are the day after, InstanceCreationDate two days after. */
  studyDate?: string;
}

export const CT_IMAGE = '1.2.840.10008.5.1.4.1.1.2';
export const US_IMAGE = '1.2.840.10008.5.1.4.1.1.6.1';
export const UID_ROOT = '1.2.826.0.1.3680043.10.543';

function nextDay(yyyymmdd: string, days: number): string {
  const d = new Date(Date.UTC(Number(yyyymmdd.slice(0, 4)), Number(yyyymmdd.slice(4, 6)) - 1, Number(yyyymmdd.slice(6, 8)) + days));
  return `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
}

const s = (vr: string, ...values: unknown[]): DcmElement => ({ vr, Value: values });
const pn = (name: string): DcmElement => ({ vr: 'PN', Value: [{ Alphabetic: name }] });

/** An 8×8 CT (or other) instance with identifying values in the places the profile must reach. */
export function synthInstance(o: SynthOptions): Buffer {
  const study = o.study ?? `${UID_ROOT}.1`;
  const series = o.series ?? `${study}.2`;
  const frameOfReference = o.frameOfReference ?? `${study}.3`;
  const sopClass = o.sopClass ?? CT_IMAGE;
  const studyDate = o.studyDate ?? '20190411';
  const pixels = new Uint16Array(64).map((_, i) => (i * 37) % 7);
  const overlay = new Uint8Array(8).fill(0x01);
  const meta: DcmDataset = {
    '00020001': { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] },
    '00020002': s('UI', sopClass),
    '00020003': s('UI', o.sop),
    '00020010': s('UI', '1.2.840.10008.1.2.1'),
    '00020012': s('UI', `${UID_ROOT}.99`),
    '00020013': s('SH', 'DXFLOW_TEST'),
    '00020016': s('AE', PLANTED.sourceAe),
  };
  const dict: DcmDataset = {
    '00080005': s('CS', 'ISO_IR 192'),
    '00080008': s('CS', 'ORIGINAL', 'PRIMARY', 'AXIAL'),
    '00080012': s('DA', nextDay(studyDate, 2)),
    '00080013': s('TM', '101112'),
    '00080014': s('UI', `${UID_ROOT}.98`),
    '00080016': s('UI', sopClass),
    '00080018': s('UI', o.sop),
    '00080020': s('DA', studyDate),
    '00080021': s('DA', studyDate),
    '00080022': s('DA', nextDay(studyDate, 1)),
    '00080023': s('DA', nextDay(studyDate, 1)),
    '0008002A': s('DT', `${nextDay(studyDate, 1)}101500.250000+0100`),
    '00080030': s('TM', '093000'),
    '00080031': s('TM', '094500'),
    '00080032': s('TM', '101500'),
    '00080033': s('TM', '101600'),
    '00080050': s('SH', PLANTED.accession),
    '00080060': s('CS', o.modality ?? 'CT'),
    '00080070': s('LO', 'Acme Scanners'),
    '00080080': s('LO', PLANTED.institution),
    '00080081': s('ST', PLANTED.institutionAddress),
    '00080090': pn(PLANTED.referrer),
    '00081010': s('SH', PLANTED.station),
    '00081030': s('LO', PLANTED.studyDescription),
    // Two items, the second with a sequence inside it: the rules reach every item at every depth.
    '00081032': {
      vr: 'SQ',
      Value: [
        { '00080100': s('SH', 'CTCHEST'), '00080102': s('SH', '99LOCAL'), '00080104': s('LO', 'CT chest'), '0040A123': pn(PLANTED.nestedPerson) },
        {
          '00080100': s('SH', 'CTABD'),
          '00080102': s('SH', '99LOCAL'),
          '00080104': s('LO', 'CT abdomen'),
          '00081140': { vr: 'SQ', Value: [{ '00081150': s('UI', CT_IMAGE), '00081155': s('UI', `${UID_ROOT}.97`), '00100010': pn(PLANTED.deepName) }] },
        },
      ],
    },
    '0008103E': s('LO', PLANTED.seriesDescription),
    '00081040': s('LO', PLANTED.department),
    '00081050': pn(PLANTED.performer),
    '00081070': pn(PLANTED.operator),
    '00081090': s('LO', 'Model X'),
    '00100010': pn(PLANTED.patientName),
    '00100020': s('LO', o.patientId ?? PLANTED.patientId),
    '00100021': s('LO', PLANTED.issuer),
    '00100030': s('DA', PLANTED.birthDate),
    '00100040': s('CS', 'F'),
    '00101000': s('LO', PLANTED.otherId),
    '00101001': pn(PLANTED.otherName),
    '00101002': { vr: 'SQ', Value: [{ '00100020': s('LO', PLANTED.otherIdInSequence), '00100022': s('CS', 'TEXT') }] },
    '00101010': s('AS', '054Y'),
    '00101020': s('DS', 1.68),
    '00101030': s('DS', 71.5),
    '00101040': s('LO', PLANTED.address),
    '00102154': s('SH', PLANTED.phone),
    '00102160': s('SH', PLANTED.ethnicGroup),
    '001021B0': s('LT', PLANTED.history),
    '00104000': s('LT', PLANTED.patientComment),
    '00180015': s('CS', 'CHEST'),
    '00180050': s('DS', 1),
    '00180060': s('DS', 120),
    '00181000': s('LO', PLANTED.serial),
    '00181030': s('LO', PLANTED.protocol),
    '00185100': s('CS', 'HFS'),
    '0020000D': s('UI', study),
    '0020000E': s('UI', series),
    '00200010': s('SH', PLANTED.studyId),
    '00200011': s('IS', 1),
    '00200013': s('IS', 1),
    '00200032': s('DS', 0, 0, 0),
    '00200037': s('DS', 1, 0, 0, 0, 1, 0),
    '00200052': s('UI', frameOfReference),
    '00201040': s('LO'),
    '00204000': s('LT', PLANTED.imageComment),
    '00280002': s('US', 1),
    '00280004': s('CS', 'MONOCHROME2'),
    '00280010': s('US', 8),
    '00280011': s('US', 8),
    '00280030': s('DS', 0.5, 0.5),
    '00280100': s('US', 16),
    '00280101': s('US', 16),
    '00280102': s('US', 15),
    '00280103': s('US', 0),
    '00281050': s('DS', 40),
    '00281051': s('DS', 400),
    '00281052': s('DS', 0),
    '00281053': s('DS', 1),
    '00324000': s('LT', PLANTED.studyComment),
    '00400275': { vr: 'SQ', Value: [{ '00401001': s('SH', PLANTED.requestedProcedureId), '00400009': s('SH', PLANTED.spsId) }] },
    // An even-group attribute that no dictionary knows, holding a person name: the unlisted-PN rule.
    '00980010': pn(PLANTED.unlistedName),
    '00290010': s('LO', 'PLANTED CREATOR'),
    '00291001': s('LO', PLANTED.privateName),
    '00291002': s('DS', 1.5),
    '00291003': { vr: 'SQ', Value: [{ '00100010': pn(PLANTED.privateNested) }] },
    '50000005': s('US', 1),
    '50000010': s('US', 2),
    '50002500': s('LO', PLANTED.curveLabel),
    '50003000': { vr: 'OW', Value: [new Uint16Array([1, 2]).buffer] },
    '60000010': s('US', 8),
    '60000011': s('US', 8),
    '60000022': s('LO', PLANTED.overlayDescription),
    '60000040': s('CS', 'G'),
    '60000050': s('SS', 1, 1),
    '60000100': s('US', 1),
    '60000102': s('US', 0),
    '60003000': { vr: 'OW', Value: [overlay.buffer] },
    '60004000': s('LT', PLANTED.overlayComment),
    '7FE00010': { vr: 'OW', Value: [pixels.buffer] },
  };
  if (o.references !== undefined) {
    dict['00081140'] = { vr: 'SQ', Value: [{ '00081150': s('UI', sopClass), '00081155': s('UI', o.references), '00080090': pn(PLANTED.nestedReferrer) }] };
  }
  if (o.burnedIn !== undefined) dict['00280301'] = s('CS', o.burnedIn);
  const file = new (dcmjs().data.DicomDict)(meta);
  file.dict = dict;
  return Buffer.from(file.write());
}

/** Every planted value found in `bytes` (as text): must be empty after de-identification. */
export function plantedValuesIn(bytes: Uint8Array, values: readonly string[]): string[] {
  const haystack = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return values.filter((v) => haystack.includes(Buffer.from(v, 'utf8')) || haystack.includes(Buffer.from(v.toUpperCase(), 'utf8')));
}

import dcmjs from 'dcmjs';
import { AppError } from '../core/errors.ts';
import type { InstanceIds } from '../pipeline/dicom-ingest.ts';

// The identifying UIDs of a DICOM Part-10 instance, for grouping instances into studies. Only these and
// a few attributes without identity are read out; the parser is dcmjs.

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

export function readInstanceIds(bytes: Buffer): InstanceIds {
  let dataset: Record<string, unknown>;
  try {
    const message = DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
    dataset = DicomMetaDictionary.naturalizeDataset(message.dict) as Record<string, unknown>;
  } catch (e) {
    throw new AppError('CORRUPT_IMAGE', `The DICOM instance cannot be parsed (${(e as Error).message}); send a DICOM Part 10 file`, { cause: e });
  }
  const uid = (name: string): string => {
    const v = dataset[name];
    if (typeof v !== 'string' || !/^[0-9.]{1,64}$/.test(v)) throw new AppError('CORRUPT_IMAGE', `The DICOM instance has no valid ${name}; every instance needs one`);
    return v;
  };
  const modality = typeof dataset['Modality'] === 'string' ? dataset['Modality'] : undefined;
  const n = Number(dataset['InstanceNumber']);
  return {
    studyInstanceUid: uid('StudyInstanceUID'),
    seriesInstanceUid: uid('SeriesInstanceUID'),
    sopInstanceUid: uid('SOPInstanceUID'),
    sopClassUid: uid('SOPClassUID'),
    modality,
    instanceNumber: Number.isInteger(n) ? n : undefined,
  };
}

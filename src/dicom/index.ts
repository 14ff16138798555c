import { AppError, toAppError } from '../core/errors.ts';
import { Deadline, DICOM_LIMIT_DEFAULTS, type DicomLimits } from './guard.ts';
import { type DicomDescription, describeDicom, parseDicom } from './parse.ts';
import { decodeDicomRgb } from './pixels.ts';

// DICOM in dxflow: guarded parsing (guard.ts, parse.ts), pixel decoding (pixels.ts, codecs.ts) and a
// description of a file that is safe to log (no patient attributes).

export { DICOM_LIMIT_DEFAULTS, type DicomLimits, guardDicom, inflateDataSet } from './guard.ts';
export { type DicomDescription, type DicomImageAttributes, parseDicom, readDicomImageAttributes } from './parse.ts';
export { decodeDicomMonochrome, decodeDicomRgb, decodeDicomSamples, type DecodeOptions, type FrameSamples, type MonochromeFrame } from './pixels.ts';
export { describeTransferSyntax, transferSyntaxName } from './uids.ts';

export interface DicomInfo extends DicomDescription {
  /** Whether frame 0 decodes to RGB under the limits; when not, the error code and message say why. */
  decodable: boolean;
  notDecodable?: { code: string; message: string };
}

/**
 * Describes a DICOM file and tries to decode its first frame. Throws (an AppError) only when the file
 * cannot be read as DICOM at all; a file whose pixels cannot be decoded is described with the reason.
 */
export async function inspectDicom(bytes: Uint8Array, limits: DicomLimits): Promise<DicomInfo> {
  const parsed = parseDicom(bytes, limits, 'header', new Deadline(limits.timeoutMs ?? DICOM_LIMIT_DEFAULTS.timeoutMs));
  const description = describeDicom(parsed);
  try {
    const full = parseDicom(bytes, limits, 'full');
    description.fragments = full.guarded.pixelData?.fragments?.length ?? null;
    description.elements = full.guarded.elements;
    await decodeDicomRgb(bytes, { limits });
    return { ...description, decodable: true };
  } catch (error) {
    const appError = toAppError(error);
    // An unexpected failure is a bug to see, not a property of the file.
    if (!(error instanceof AppError)) throw error;
    return { ...description, decodable: false, notDecodable: { code: appError.code, message: appError.message } };
  }
}

import { AppError } from '../core/errors.ts';
import { type DicomImageAttributes, readDicomImageAttributes as readAttributes } from '../dicom/parse.ts';

// The DICOM header as the upload path reads it (header.ts, inspect.ts): the image attributes of a DICOM
// Part 10 file, read no further than its Pixel Data, so the cost is the size of the header and not of
// the pixels. The file goes through the same structural guard as a full decode (src/dicom/guard.ts):
// every length, sequence and item is checked before dicom-parser reads it, deflated data sets are
// inflated under a cap, and big endian data sets are read too.

export type { DicomImageAttributes } from '../dicom/parse.ts';
export { describeTransferSyntax } from '../dicom/uids.ts';

export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/**
 * Reads the file meta information and the top-level image attributes, stopping at Pixel Data. A file
 * with neither Pixel Data nor Rows and Columns (a report, a plan, a DICOMDIR) is DICOM_NO_IMAGE.
 */
export function readDicomImageAttributes(bytes: Uint8Array): DicomImageAttributes {
  const attributes = readAttributes(bytes);
  if (!attributes.pixelData && attributes.rows === undefined && attributes.columns === undefined) {
    throw new AppError('DICOM_NO_IMAGE', 'The DICOM object holds no image (no Pixel Data, Rows or Columns); it is a report, plan, directory or other non-image object.');
  }
  return attributes;
}

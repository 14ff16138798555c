// The transfer syntaxes (PS3.6 Table A-1) and the handful of SOP classes dxflow names in its output.
// Each transfer syntax says how its data set is encoded and how its pixel data is compressed; the
// decoder dispatches on `pixels`, and anything it does not list is refused naming the UID.

/** How the pixel data of a transfer syntax is encoded (PS3.5 §8 and Annex A). */
export type PixelEncoding =
  | 'native'
  | 'encapsulated-uncompressed'
  | 'rle'
  | 'jpeg'
  | 'jpeg-lossless'
  | 'jpeg-ls'
  | 'jpeg2000'
  | 'deflate-frame'
  | 'not-decoded';

/** How the data set itself is encoded: PS3.5 A.1 (implicit), A.2 (explicit LE), A.3 (big endian), A.5 (deflated). */
export type DataSetEncoding = 'implicit-le' | 'explicit-le' | 'explicit-be' | 'deflated-le' | 'jpip-deflated';

export interface TransferSyntax {
  name: string;
  dataSet: DataSetEncoding;
  pixels: PixelEncoding;
}

function ts(name: string, pixels: PixelEncoding, dataSet: DataSetEncoding = 'explicit-le'): TransferSyntax {
  return { name, pixels, dataSet };
}

export const TRANSFER_SYNTAXES: Readonly<Record<string, TransferSyntax>> = {
  '1.2.840.10008.1.2': ts('Implicit VR Little Endian', 'native', 'implicit-le'),
  '1.2.840.10008.1.2.1': ts('Explicit VR Little Endian', 'native'),
  '1.2.840.10008.1.2.1.98': ts('Encapsulated Uncompressed Explicit VR Little Endian', 'encapsulated-uncompressed'),
  '1.2.840.10008.1.2.1.99': ts('Deflated Explicit VR Little Endian', 'native', 'deflated-le'),
  '1.2.840.10008.1.2.2': ts('Explicit VR Big Endian (retired)', 'native', 'explicit-be'),
  '1.2.840.10008.1.2.4.50': ts('JPEG Baseline (Process 1)', 'jpeg'),
  '1.2.840.10008.1.2.4.51': ts('JPEG Extended (Process 2 & 4)', 'jpeg'),
  '1.2.840.10008.1.2.4.57': ts('JPEG Lossless, Non-Hierarchical (Process 14)', 'jpeg-lossless'),
  '1.2.840.10008.1.2.4.70': ts('JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, Selection Value 1)', 'jpeg-lossless'),
  '1.2.840.10008.1.2.4.80': ts('JPEG-LS Lossless', 'jpeg-ls'),
  '1.2.840.10008.1.2.4.81': ts('JPEG-LS Lossy (Near-Lossless)', 'jpeg-ls'),
  '1.2.840.10008.1.2.4.90': ts('JPEG 2000 (Lossless Only)', 'jpeg2000'),
  '1.2.840.10008.1.2.4.91': ts('JPEG 2000', 'jpeg2000'),
  '1.2.840.10008.1.2.4.92': ts('JPEG 2000 Part 2 Multi-component (Lossless Only)', 'not-decoded'),
  '1.2.840.10008.1.2.4.93': ts('JPEG 2000 Part 2 Multi-component', 'not-decoded'),
  '1.2.840.10008.1.2.4.94': ts('JPIP Referenced', 'not-decoded'),
  '1.2.840.10008.1.2.4.95': ts('JPIP Referenced Deflate', 'not-decoded', 'jpip-deflated'),
  '1.2.840.10008.1.2.4.100': ts('MPEG2 Main Profile / Main Level', 'not-decoded'),
  '1.2.840.10008.1.2.4.100.1': ts('Fragmentable MPEG2 Main Profile / Main Level', 'not-decoded'),
  '1.2.840.10008.1.2.4.101': ts('MPEG2 Main Profile / High Level', 'not-decoded'),
  '1.2.840.10008.1.2.4.101.1': ts('Fragmentable MPEG2 Main Profile / High Level', 'not-decoded'),
  '1.2.840.10008.1.2.4.102': ts('MPEG-4 AVC/H.264 High Profile / Level 4.1', 'not-decoded'),
  '1.2.840.10008.1.2.4.102.1': ts('Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1', 'not-decoded'),
  '1.2.840.10008.1.2.4.103': ts('MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1', 'not-decoded'),
  '1.2.840.10008.1.2.4.103.1': ts('Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1', 'not-decoded'),
  '1.2.840.10008.1.2.4.104': ts('MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video', 'not-decoded'),
  '1.2.840.10008.1.2.4.104.1': ts('Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video', 'not-decoded'),
  '1.2.840.10008.1.2.4.105': ts('MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video', 'not-decoded'),
  '1.2.840.10008.1.2.4.105.1': ts('Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video', 'not-decoded'),
  '1.2.840.10008.1.2.4.106': ts('MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2', 'not-decoded'),
  '1.2.840.10008.1.2.4.106.1': ts('Fragmentable MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2', 'not-decoded'),
  '1.2.840.10008.1.2.4.107': ts('HEVC/H.265 Main Profile / Level 5.1', 'not-decoded'),
  '1.2.840.10008.1.2.4.108': ts('HEVC/H.265 Main 10 Profile / Level 5.1', 'not-decoded'),
  '1.2.840.10008.1.2.4.110': ts('JPEG XL Lossless', 'not-decoded'),
  '1.2.840.10008.1.2.4.111': ts('JPEG XL JPEG Recompression', 'not-decoded'),
  '1.2.840.10008.1.2.4.112': ts('JPEG XL', 'not-decoded'),
  '1.2.840.10008.1.2.4.201': ts('High-Throughput JPEG 2000 (Lossless Only)', 'not-decoded'),
  '1.2.840.10008.1.2.4.202': ts('High-Throughput JPEG 2000 with RPCL Options (Lossless Only)', 'not-decoded'),
  '1.2.840.10008.1.2.4.203': ts('High-Throughput JPEG 2000', 'not-decoded'),
  '1.2.840.10008.1.2.5': ts('RLE Lossless', 'rle'),
  '1.2.840.10008.1.2.8.1': ts('Deflated Image Frame Compression', 'deflate-frame'),
};

/** The name of a standard transfer syntax, or undefined for a private or unknown UID. */
export function transferSyntaxName(uid: string): string | undefined {
  return TRANSFER_SYNTAXES[uid]?.name;
}

/** "1.2.840.10008.1.2.4.50 (JPEG Baseline (Process 1))", or the bare UID when it is not a standard one. */
export function describeTransferSyntax(uid: string): string {
  const name = transferSyntaxName(uid);
  return name ? `${uid} (${name})` : `${uid} (not a standard transfer syntax)`;
}

/** SOP classes (PS3.4 Annex B) named in `dxflow dicom info`; others are shown by UID only. */
const SOP_CLASS_NAMES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.3.10': 'Media Storage Directory Storage (DICOMDIR)',
  '1.2.840.10008.5.1.4.1.1.1': 'Computed Radiography Image Storage',
  '1.2.840.10008.5.1.4.1.1.1.1': 'Digital X-Ray Image Storage - For Presentation',
  '1.2.840.10008.5.1.4.1.1.1.1.1': 'Digital X-Ray Image Storage - For Processing',
  '1.2.840.10008.5.1.4.1.1.1.2': 'Digital Mammography X-Ray Image Storage - For Presentation',
  '1.2.840.10008.5.1.4.1.1.1.2.1': 'Digital Mammography X-Ray Image Storage - For Processing',
  '1.2.840.10008.5.1.4.1.1.2': 'CT Image Storage',
  '1.2.840.10008.5.1.4.1.1.2.1': 'Enhanced CT Image Storage',
  '1.2.840.10008.5.1.4.1.1.3.1': 'Ultrasound Multi-frame Image Storage',
  '1.2.840.10008.5.1.4.1.1.4': 'MR Image Storage',
  '1.2.840.10008.5.1.4.1.1.4.1': 'Enhanced MR Image Storage',
  '1.2.840.10008.5.1.4.1.1.6.1': 'Ultrasound Image Storage',
  '1.2.840.10008.5.1.4.1.1.7': 'Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.7.1': 'Multi-frame Single Bit Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.7.2': 'Multi-frame Grayscale Byte Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.7.3': 'Multi-frame Grayscale Word Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.7.4': 'Multi-frame True Color Secondary Capture Image Storage',
  '1.2.840.10008.5.1.4.1.1.9.1.1': '12-lead ECG Waveform Storage',
  '1.2.840.10008.5.1.4.1.1.12.1': 'X-Ray Angiographic Image Storage',
  '1.2.840.10008.5.1.4.1.1.12.2': 'X-Ray Radiofluoroscopic Image Storage',
  '1.2.840.10008.5.1.4.1.1.20': 'Nuclear Medicine Image Storage',
  '1.2.840.10008.5.1.4.1.1.66.4': 'Segmentation Storage',
  '1.2.840.10008.5.1.4.1.1.77.1.2': 'VL Microscopic Image Storage',
  '1.2.840.10008.5.1.4.1.1.77.1.4': 'VL Photographic Image Storage',
  '1.2.840.10008.5.1.4.1.1.77.1.6': 'VL Whole Slide Microscopy Image Storage',
  '1.2.840.10008.5.1.4.1.1.88.11': 'Basic Text SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.22': 'Enhanced SR Storage',
  '1.2.840.10008.5.1.4.1.1.88.33': 'Comprehensive SR Storage',
  '1.2.840.10008.5.1.4.1.1.104.1': 'Encapsulated PDF Storage',
  '1.2.840.10008.5.1.4.1.1.128': 'Positron Emission Tomography Image Storage',
  '1.2.840.10008.5.1.4.1.1.130': 'Enhanced PET Image Storage',
  '1.2.840.10008.5.1.4.1.1.481.1': 'RT Image Storage',
  '1.2.840.10008.5.1.4.1.1.481.2': 'RT Dose Storage',
  '1.2.840.10008.5.1.4.1.1.481.3': 'RT Structure Set Storage',
  '1.2.840.10008.5.1.4.1.1.481.5': 'RT Plan Storage',
};

export function sopClassName(uid: string): string | undefined {
  return SOP_CLASS_NAMES[uid];
}

// The part of dcmjs (which ships no types) that dxflow uses: reading and writing DICOM Part 10, and the
// dictionary's naturalize / denaturalize between tag-keyed and keyword-keyed data sets.
declare module 'dcmjs' {
  export interface DicomElement {
    vr: string;
    Value?: unknown[];
    InlineBinary?: string;
    BulkDataURI?: string;
    _rawValue?: unknown;
  }
  export type DicomDataset = Record<string, DicomElement>;
  export interface DicomDictInstance {
    meta: DicomDataset;
    dict: DicomDataset;
    write(options?: Record<string, unknown>): ArrayBuffer;
  }
  const dcmjs: {
    data: {
      DicomMessage: {
        readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): DicomDictInstance;
      };
      DicomDict: new (meta: DicomDataset) => DicomDictInstance;
      DicomMetaDictionary: {
        naturalizeDataset(dataset: DicomDataset): Record<string, unknown>;
        denaturalizeDataset(dataset: Record<string, unknown>): DicomDataset;
        uid(): string;
        dictionary: Record<string, { tag: string; vr: string; name: string; vm: string; version: string }>;
        nameMap: Record<string, { tag: string; vr: string; name: string; vm: string; version: string }>;
      };
    };
  };
  export default dcmjs;
}

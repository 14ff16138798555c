import { createRequire } from 'node:module';

// dcmjs ships no type declarations. The few parts of its API used here are typed below and the
// package is loaded through require (its CommonJS build), which keeps the typing local to this folder
// instead of declaring the module for the whole program.

/** One data element in dcmjs's dictionary form (PS3.18 F.2 JSON model, with binary values as ArrayBuffers). */
export interface DcmElement {
  vr: string;
  Value?: unknown[];
  InlineBinary?: string;
  /** The bytes as read, written back unchanged by dcmjs when Value is unchanged; cleared on every change. */
  _rawValue?: unknown;
}

/** A data set (or a sequence item): elements keyed by GGGGEEEE in upper-case hex. */
export type DcmDataset = Record<string, DcmElement>;

export interface DcmDict {
  meta: DcmDataset;
  dict: DcmDataset;
  write(options?: { allowInvalidVRLength?: boolean }): ArrayBuffer;
}

interface DcmjsModule {
  data: {
    DicomMessage: {
      readFile(buffer: ArrayBuffer, options?: { ignoreErrors?: boolean; untilTag?: string | null; noCopy?: boolean }): DcmDict;
    };
    DicomDict: new (meta: DcmDataset) => DcmDict;
  };
  log: { setLevel(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'): void; getLevel(): number };
}

const require = createRequire(import.meta.url);

let loaded: DcmjsModule | undefined;

export function dcmjs(): DcmjsModule {
  loaded ??= require('dcmjs') as DcmjsModule;
  return loaded;
}

// DICOM network ingest: a C-STORE SCP, a STOW-RS request parser and response builder, and a study
// assembler that batches received instances per study.
export {
  DEFAULT_TRANSFER_SYNTAXES,
  IMAGE_STORAGE_SOP_CLASSES,
  type ReceivedInstance,
  type ScpLog,
  startStoreScp,
  type StoreScp,
  type StoreScpOptions,
  VERIFICATION_SOP_CLASS,
} from './scp.ts';
export { STATUS as DIMSE_STATUS } from './dimse.ts';
export { type InstanceIdentity, isValidUid, type Part10Identity, readDatasetIdentity, readPart10Identity } from './identity.ts';
export { buildPart10, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './part10.ts';
export {
  buildStowResponse,
  type DicomJsonDataset,
  parseMediaType,
  parseStowRequest,
  STOW_FAILURE,
  type StowFailed,
  type StowLimits,
  type StowPart,
  type StowStored,
  stowBoundary,
} from './stow.ts';
export {
  type AddResult,
  type AssembledInstance,
  type AssemblerClock,
  type AssemblerInstance,
  createStudyAssembler,
  type Replacement,
  sha256Hex,
  type StudyAssembler,
  type StudyAssemblerOptions,
  type StudyCompletionInfo,
  systemClock,
} from './study-assembler.ts';

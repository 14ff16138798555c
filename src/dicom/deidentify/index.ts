// DICOM de-identification (PS3.15 Annex E, Basic Application Level Confidentiality Profile).
export { DEID_CODES, type DatesOption, deidentifyDicom, type DeidentifyOptions, type DeidentifyOutcome, type DeidentifySummary, parseSafePrivate, quarantineError, quarantineReason, readPart10, releasedBytes, resolveAction, type SafePrivateTag } from './deidentify.ts';
export { type BasicAction, EXTRA_ROWS, PROFILE_TABLE, type ProfileRow, profileRow } from './profile-table.ts';
export { dateShiftDays, type DeidentificationKey, deidentificationKey, isValidUid, keyFromHex, MIN_KEY_BYTES, replacementUid } from './uid.ts';

// Moving DA and DT values by whole days (PS3.15 E.3.6, Retain Longitudinal Temporal Information with
// Modified Dates). Whole days keep the time of day, so TM values stay as they are and a DT keeps its
// time and UTC offset; only the calendar date moves. A value that is not a complete date (a DT of only
// "YYYY" or "YYYYMM", an empty value, a malformed one) cannot be moved exactly and is reported as
// such: the caller then applies the Basic Profile action instead of keeping it.

const DAY_MS = 86_400_000;

function shiftDate(yyyymmdd: string, days: number): string | undefined {
  if (!/^\d{8}$/.test(yyyymmdd)) return undefined;
  const year = Number(yyyymmdd.slice(0, 4));
  const month = Number(yyyymmdd.slice(4, 6));
  const day = Number(yyyymmdd.slice(6, 8));
  const ms = Date.UTC(year, month - 1, day);
  const check = new Date(ms);
  // Date.UTC rolls 20230230 over into March: such a value is not a date and is not shifted.
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return undefined;
  // Years 0-99 are mapped to 1900-1999 by Date.UTC; DICOM years are four digits and a year before
  // 1000 is not a plausible acquisition date, so such a value is not shifted either.
  if (year < 1000) return undefined;
  const moved = new Date(ms + days * DAY_MS);
  const y = moved.getUTCFullYear();
  if (y < 1000 || y > 9999) return undefined;
  return `${String(y).padStart(4, '0')}${String(moved.getUTCMonth() + 1).padStart(2, '0')}${String(moved.getUTCDate()).padStart(2, '0')}`;
}

/** A DA value moved by `days`, or undefined when it is not a complete date (YYYYMMDD, or the old YYYY.MM.DD). */
export function shiftDA(value: string, days: number): string | undefined {
  const text = value.trim();
  const compact = /^\d{4}\.\d{2}\.\d{2}$/.test(text) ? text.replaceAll('.', '') : text;
  return shiftDate(compact, days);
}

/** A DT value moved by `days`, keeping its time and UTC offset; undefined when its date is incomplete. */
export function shiftDT(value: string, days: number): string | undefined {
  const text = value.trim();
  const match = /^(\d{8})(\d{0,6}(?:\.\d{1,6})?)?([+-]\d{4})?$/.exec(text);
  if (match === null) return undefined;
  const date = shiftDate(match[1] ?? '', days);
  return date === undefined ? undefined : `${date}${match[2] ?? ''}${match[3] ?? ''}`;
}

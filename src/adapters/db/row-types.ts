import pg from 'pg';

// Both adapters turn column values into the same JavaScript values, so a repository written against
// one engine reads identical rows from the other. Left to themselves they differ: node-postgres returns
// int8 as a string and date as a local-midnight Date, PGlite returns int8 as a number and date as a
// UTC-midnight Date, and they disagree on bytea and interval. The choices below:
//   int8 (bigint columns, count(*))  number when it is a safe integer, else bigint (PGlite's own rule)
//   bytea                            Buffer
//   date                             'YYYY-MM-DD' string: a calendar date is not an instant, and a
//                                    Date would shift it by the process time zone
//   interval                         PostgreSQL's text form, e.g. '1 day 02:00:00'
// Arrays of these types follow their element type. Everything else is already the same on both
// (int2/int4/float: number, numeric: string, json/jsonb: parsed, timestamptz: Date, uuid/text: string).

export const TYPE_OID = {
  BYTEA: 17,
  INT8: 20,
  TEXT_ARRAY: 1009,
  INT8_ARRAY: 1016,
  DATE: 1082,
  DATE_ARRAY: 1182,
  INTERVAL: 1186,
  INTERVAL_ARRAY: 1187,
} as const;

export function parseInt8(text: string): number | bigint {
  const value = BigInt(text);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function parseBytea(text: string): Buffer {
  // PostgreSQL's default bytea_output is 'hex': \x followed by two hex digits per byte.
  return Buffer.from(text.slice(2), 'hex');
}

function asText(text: string): string {
  return text;
}

type NestedArray<T> = (T | null | NestedArray<T>)[];

function mapNested<T>(values: NestedArray<string>, parse: (text: string) => T): NestedArray<T> {
  return values.map((value) => (value === null ? null : Array.isArray(value) ? mapNested(value, parse) : parse(value)));
}

/** Parsers handed to PGlite (its `parsers` option); its array parsers reuse the element parser. */
export const pgliteParsers: Record<number, (text: string) => unknown> = {
  [TYPE_OID.BYTEA]: parseBytea,
  [TYPE_OID.DATE]: asText,
};

// pg-types declares its parameter as the union of the OIDs it names, which leaves out the array OIDs.
const defaultParser = pg.types.getTypeParser as unknown as (oid: number, format?: 'text' | 'binary') => (text: string) => unknown;

/** Type parsers for a node-postgres pool (its `types` option), matching PGlite's results. */
export const postgresTypes: { getTypeParser: typeof pg.types.getTypeParser } = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (format === 'binary') return defaultParser(oid, format);
    const parseTextArray = defaultParser(TYPE_OID.TEXT_ARRAY, 'text') as (text: string) => NestedArray<string>;
    switch (oid) {
      case TYPE_OID.INT8:
        return parseInt8;
      case TYPE_OID.INT8_ARRAY:
        return (text: string) => mapNested(parseTextArray(text), parseInt8);
      case TYPE_OID.DATE:
      case TYPE_OID.INTERVAL:
        return asText;
      case TYPE_OID.DATE_ARRAY:
      case TYPE_OID.INTERVAL_ARRAY:
        return parseTextArray;
      default:
        return defaultParser(oid, 'text');
    }
  }) as typeof pg.types.getTypeParser,
};

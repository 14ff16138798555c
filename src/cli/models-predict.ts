import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { AppError } from '../core/errors.ts';
import { loadXgboostModel, type XgboostModel } from '../models/xgboost/index.ts';

// `dxflow models predict`: an XGBoost JSON model applied to a table of rows, one result per row, with
// SHAP values on request. Rows are CSV (RFC 4180, a header row of feature names) or JSON Lines (one
// object per line keyed by feature name). Missing values stay missing — never zero: an empty CSV cell,
// "NA" or "NaN", a JSON null or an absent JSON key go the way XGBoost sends missing values.

export interface PredictRowsOptions {
  /** An XGBoost JSON model file (Booster.save_model("model.json")). */
  modelFile: string;
  /** A .csv file, or a .jsonl / .ndjson file; other names are recognised by their first character. */
  inputFile: string;
  /** Add SHAP values (margin space) per row. */
  explain: boolean;
}

export interface FeatureShap {
  /** Expected margin before any feature is known (base margin included). */
  bias: number;
  /** Contribution of each feature to the margin; with the bias they sum to the margin. */
  values: Record<string, number>;
}

export interface PredictedRow {
  /** 1-based index of the data row (the CSV header is not counted). */
  row: number;
  /** One value for binary classification and regression, one probability per class for multi-class. */
  prediction: number | number[];
  shap?: FeatureShap | Array<FeatureShap & { class: number }>;
}

const MISSING_CELLS = new Set(['', 'NA', 'NaN']);
// Decimal numbers only: Number() would also take "0x1f", "Infinity" and "" (as 0).
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function badRequest(message: string): AppError {
  return new AppError('INVALID_REQUEST', message);
}

async function readModel(file: string): Promise<XgboostModel> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw badRequest(`Cannot read the model file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return loadXgboostModel(text);
}

function featureNamesOf(model: XgboostModel): readonly string[] {
  return model.featureNames ?? Array.from({ length: model.numFeature }, (_, i) => `f${i}`);
}

function unknownFeature(kind: 'column' | 'key', name: string, where: string, features: readonly string[]): AppError {
  return badRequest(`${where}: ${kind} "${name}" is not a feature of the model; its features are ${features.join(', ')}`);
}

interface CsvRecord {
  fields: string[];
  /** 1-based line where the record starts. */
  line: number;
}

/**
 * Splits CSV text into records (RFC 4180): fields separated by commas, records by CRLF or LF, fields in
 * double quotes may hold commas, line breaks and doubled quotes. Works across chunk boundaries (a
 * doubled quote or a CRLF may be split between two chunks). Empty lines are skipped.
 */
export async function* csvRecords(chunks: AsyncIterable<string>, file: string): AsyncGenerator<CsvRecord> {
  // field: in an unquoted field; quoted: inside quotes; quote: a quote inside quotes, which closes the
  // field unless another quote follows; closed: after the closing quote, until a separator.
  let state: 'field' | 'quoted' | 'quote' | 'closed' = 'field';
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let recordLine = 1;
  let skipLineFeed = false;
  let first = true;
  const endRecord = (): CsvRecord | undefined => {
    const blank = fields.length === 0 && field === '' && state === 'field';
    fields.push(field);
    const record = blank ? undefined : { fields, line: recordLine };
    fields = [];
    field = '';
    state = 'field';
    return record;
  };
  for await (let chunk of chunks) {
    if (chunk.length === 0) continue;
    if (first && chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    first = false;
    for (const c of chunk) {
      if (skipLineFeed) {
        skipLineFeed = false;
        if (c === '\n') continue;
      }
      if (state === 'quote') {
        if (c === '"') {
          field += '"';
          state = 'quoted';
          continue;
        }
        state = 'closed';
      }
      if (state === 'quoted') {
        if (c === '"') state = 'quote';
        else {
          if (c === '\n' || c === '\r') line++;
          if (c === '\r') skipLineFeed = true;
          field += c;
        }
        continue;
      }
      if (c === ',') {
        fields.push(field);
        field = '';
        state = 'field';
      } else if (c === '\n' || c === '\r') {
        skipLineFeed = c === '\r';
        const record = endRecord();
        if (record) yield record;
        line++;
        recordLine = line;
      } else if (c === '"') {
        if (state !== 'field' || field.trim() !== '') {
          throw badRequest(`${file} line ${line}: a quote inside an unquoted field; quote the whole field and double any quote in it ("")`);
        }
        field = '';
        state = 'quoted';
      } else if (state === 'closed') {
        if (c !== ' ' && c !== '\t') throw badRequest(`${file} line ${line}: text after a closing quote; a quoted field must end at a comma or the end of the line`);
      } else {
        field += c;
      }
    }
  }
  if (state === 'quoted') throw badRequest(`${file} line ${recordLine}: a quoted field is never closed`);
  const record = endRecord();
  if (record) yield record;
}

function parseCell(text: string, where: string): number | null {
  const cell = text.trim();
  if (MISSING_CELLS.has(cell)) return null;
  if (!DECIMAL.test(cell)) throw badRequest(`${where}: "${cell}" is not a number (leave the cell empty, or write NA, for a missing value)`);
  const value = Number(cell);
  if (!Number.isFinite(value)) throw badRequest(`${where}: "${cell}" is too large`);
  return value;
}

async function* csvRows(file: string, features: readonly string[]): AsyncGenerator<Array<number | null>> {
  const position = new Map(features.map((f, i) => [f, i]));
  let columns: number[] | undefined;
  let header: string[] = [];
  let row = 0;
  for await (const record of csvRecords(createReadStream(file, { encoding: 'utf8' }), file)) {
    if (!columns) {
      header = record.fields.map((h) => h.trim());
      const seen = new Set<string>();
      columns = header.map((name) => {
        const index = position.get(name);
        if (index === undefined) throw unknownFeature('column', name, `${file} header`, features);
        if (seen.has(name)) throw badRequest(`${file} header: column "${name}" appears twice`);
        seen.add(name);
        return index;
      });
      const absent = features.filter((f) => !seen.has(f));
      if (absent.length > 0) {
        throw badRequest(`${file} header: no column for ${absent.map((a) => `"${a}"`).join(', ')}; add the column (empty cells mean missing) so that a missing feature is a decision, not an accident`);
      }
      continue;
    }
    row++;
    const rowNumber = row;
    const where = (column?: string) => `${file} row ${rowNumber} (line ${record.line})${column === undefined ? '' : `, column "${column}"`}`;
    if (record.fields.length !== header.length) throw badRequest(`${where()}: ${record.fields.length} fields, the header has ${header.length}`);
    const values = new Array<number | null>(features.length).fill(null);
    const positions = columns;
    record.fields.forEach((text, i) => {
      values[positions[i] as number] = parseCell(text, where(header[i]));
    });
    yield values;
  }
  if (!columns) throw badRequest(`${file} is empty; expected a header row of feature names`);
}

async function* jsonlRows(file: string, features: readonly string[]): AsyncGenerator<Array<number | null>> {
  const position = new Map(features.map((f, i) => [f, i]));
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let lineNumber = 0;
  let row = 0;
  for await (const raw of lines) {
    lineNumber++;
    const text = lineNumber === 1 ? raw.replace(/^\uFEFF/, '') : raw;
    if (text.trim() === '') continue;
    row++;
    const rowNumber = row;
    const lineOfRow = lineNumber;
    const where = (column?: string) => `${file} row ${rowNumber} (line ${lineOfRow})${column === undefined ? '' : `, key "${column}"`}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw badRequest(`${where()}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badRequest(`${where()}: expected a JSON object keyed by feature name`);
    const values = new Array<number | null>(features.length).fill(null);
    for (const [key, value] of Object.entries(parsed)) {
      const index = position.get(key);
      if (index === undefined) throw unknownFeature('key', key, where(), features);
      if (value !== null && (typeof value !== 'number' || !Number.isFinite(value))) {
        throw badRequest(`${where(key)}: ${JSON.stringify(value)} is not a number (use null for a missing value)`);
      }
      values[index] = value;
    }
    yield values;
  }
}

async function isJsonLines(file: string): Promise<boolean> {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return false;
  if (ext === '.jsonl' || ext === '.ndjson') return true;
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 4096 })) {
    const text = (chunk as string).replace(/^\uFEFF/, '').trimStart();
    if (text.length > 0) return text.startsWith('{');
  }
  return false;
}

function shapOf(contributions: number[], features: readonly string[]): FeatureShap {
  // fromEntries defines own properties, so even a feature named "__proto__" is just a key.
  const values = Object.fromEntries(features.map((f, i) => [f, contributions[i] as number]));
  return { bias: contributions[features.length] as number, values };
}

/**
 * Predicts every row of a CSV or JSON Lines file with an XGBoost JSON model, yielding one result per
 * row as it goes. Throws INVALID_REQUEST naming the file, row and column for an unknown column, a value
 * that is not a number, or a malformed line; MODEL_MANIFEST_INVALID for a model that cannot be loaded.
 */
export async function* predictRows(options: PredictRowsOptions): AsyncGenerator<PredictedRow> {
  const model = await readModel(options.modelFile);
  const features = featureNamesOf(model);
  const input = await stat(options.inputFile).catch((e: NodeJS.ErrnoException) => {
    throw badRequest(`Cannot read the input file ${options.inputFile}: ${e.code ?? e.message}`);
  });
  if (!input.isFile()) throw badRequest(`The input ${options.inputFile} is not a file`);
  const rows = (await isJsonLines(options.inputFile)) ? jsonlRows(options.inputFile, features) : csvRows(options.inputFile, features);
  let index = 0;
  for await (const values of rows) {
    index++;
    const prediction = model.predict(values);
    const result: PredictedRow = { row: index, prediction: model.outputCount === 1 ? (prediction[0] as number) : prediction };
    if (options.explain) {
      const groups = model.contributions(values);
      result.shap = model.outputCount === 1
        ? shapOf(groups[0] as number[], features)
        : groups.map((g, c) => ({ class: c, ...shapOf(g, features) }));
    }
    yield result;
  }
}

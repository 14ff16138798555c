import { AppError } from '../core/errors.ts';
import type { ClinicalFeatures } from '../core/report.ts';
import { encodeTStage, featureDefinition, type FeatureName } from './features.ts';
import {
  gleasonObservations,
  observeNumber,
  parseDecimal,
  psaInNgPerMl,
  resolveFeatures,
  unparseable,
  type Evidence,
  type GleasonPart,
  type Observation,
} from './observations.ts';
import { parseStructuredNote } from './structured.ts';

// Free-text clinical note → catalogue features. Each feature has a few patterns for how notes write
// it ("68-year-old man", "PSA: 4,5 ng/ml", "Gleason score 7 (4+3)", "cT2b", "4/12 cores positive",
// "treatment-naive"); every statement found becomes an observation with the exact span it was read
// from, and observations.ts decides what is used. The parser prefers missing to wrong: a statement in a
// negated or hypothetical clause ("no prior radiotherapy", "candidate for active surveillance",
// "possible bone metastases") is not read, and one that says something only about one modality or
// site ("no bone metastases") does not stand for the whole feature.
//
// Decisions a reader would otherwise have to rediscover:
//   - a PSA without a unit is ng/mL, with no issue: it is the unit total PSA is reported in;
//   - a word after a label is a failed value (UNPARSEABLE) only in a value slot, after ":" or "=",
//     or when it is a placeholder ("pending", "n/a"): "PSA: abc" is reported, "PSA abc" and "PSA
//     rising" are prose;
//   - a note longer than MAX_NOTE_CHARS is refused (INVALID_REQUEST), never cut.
//
// Cost: every pattern run over the whole note uses bounded quantifiers only ({0,3}; never * or +), so
// a scan is linear in the note length with no nested repetition for a crafted note to make backtrack;
// the few unbounded ones run on clause windows of at most 48 characters. Notes longer than
// MAX_NOTE_CHARS are refused before any pattern runs, and each pattern reads at most
// MAX_STATEMENTS_PER_PATTERN statements, which bounds the result as well as the time.

/**
 * Longest note parsed, in UTF-16 code units: equal to the intake limit of 64 KiB of UTF-8
 * (pipeline/intake.ts MAX_NOTE_BYTES), which no UTF-8 text of that size can exceed in code units, so
 * a note accepted at intake is always parsed. A longer note is refused with INVALID_REQUEST rather
 * than cut: a cut could drop the one statement that contradicts another.
 */
export const MAX_NOTE_CHARS = 64 * 1024;

export interface NoteOptions {
  /** Override MAX_NOTE_CHARS. */
  maxChars?: number;
}

type Match = RegExpExecArray;

/**
 * Most statements read per pattern. A real note states a feature a handful of times; hundreds of
 * matches mean generated or pasted text, and reading them all would only grow the result. Past the
 * limit the feature is reported as unreadable rather than read from a prefix, since a contradicting
 * statement could be in the part not read.
 */
export const MAX_STATEMENTS_PER_PATTERN = 64;

function* statements(text: string, pattern: RegExp, feature: FeatureName, out: Observation[]): Generator<Match> {
  let count = 0;
  for (const m of text.matchAll(pattern)) {
    if (++count > MAX_STATEMENTS_PER_PATTERN) {
      const label = featureDefinition(feature).label;
      out.push({ feature, evidence: [], problem: { code: 'UNPARSEABLE', message: `The note has more than ${MAX_STATEMENTS_PER_PATTERN} statements of ${label} of one form, so it is not read for ${label}` } });
      return;
    }
    yield m;
  }
}

function spanOf(text: string, start: number, end: number): Evidence {
  let last = end;
  while (last > start && /\s/.test(text[last - 1] ?? '')) last--;
  return { start, end: last, text: text.slice(start, last), source: 'note' };
}

function whole(text: string, m: Match): Evidence {
  return spanOf(text, m.index, m.index + m[0].length);
}

function group(text: string, m: Match, name: string): Evidence | undefined {
  const at = m.indices?.groups?.[name];
  return at ? spanOf(text, at[0], at[1]) : undefined;
}

/** Words that stand where a value should be and say it is not there. */
const PLACEHOLDER = /^(?:pending|unknown|unk|unavailable|n\/a|na|nd|tbd|tba|awaited|not\s(?:done|available|known|measured|performed)|\?+)$/i;

/** A non-numeric word after a label is a value that failed only where the note clearly gave a value. */
function isValueSlot(link: string | undefined, word: string): boolean {
  return /[:=]/.test(link ?? '') || PLACEHOLDER.test(word);
}

// Shared pattern pieces. WORD is the token read as a would-be value when no number follows a label.
const WORD = String.raw`not\s(?:done|available|known|measured|performed)|[A-Za-z?][\w/?'-]{0,19}`;
const LINK = String.raw`(?<link>(?:\s{0,3}(?:[:=]|\b(?:of|was|is)\b)){0,2})\s{0,3}`;
const NUMBER = String.raw`[-−]?\d{1,9}(?:[.,]\d{1,9}){0,3}`;

// ---------------------------------------------------------------------------------------------------
// Clause context: negation and hypothetical statements

const NEGATION = /\b(?:no|not|denies|denied|without|never|nor|negative\s+for|free\s+of|absence\s+of|rule\s+out|ruled\s+out|r\/o)\b/i;
const HYPOTHETICAL = /\b(?:plan(?:s|ned|ning)?|schedul\w*|will|would|should|consider\w*|discuss\w*|candidate|eligible|option\w*|offer\w*|recommend\w*|refer\w*|decision|decid\w*|counsel\w*|information|education|versus|vs|if|whether|possible|possibly|probable|probably|suspicious|suspected|suspect|concern\w*|query|questionable|equivocal|indeterminate|likely|risk\s+of|at\s+risk|evaluat\w*|work[\s-]?up|assess\w*)\b|\?/i;
const AFTER_DENIAL = /\b(?:not|none|nil|cannot|ruled\s+out|excluded|unlikely|absent|negative|declined|refused|planned|scheduled)\b|\?/i;

const CLAUSE_END = /[;!?\n]|\.(?!\d)|\b(?:but|however|although|though|except)\b/gi;
const CLAUSE_OR_LIST_END = /[,;!?\n]|\.(?!\d)|\b(?:but|however|although|though|except)\b/gi;

/**
 * The clause before `start`, at most `size` characters: cut at sentence ends and at "but"/"however",
 * and with `commas`, at commas too.
 */
function clauseBefore(text: string, start: number, size = 48, commas = false): string {
  const window = text.slice(Math.max(0, start - size), start);
  let cut = 0;
  for (const m of window.matchAll(commas ? CLAUSE_OR_LIST_END : CLAUSE_END)) cut = m.index + m[0].length;
  return window.slice(cut);
}

/** The rest of the clause after `end` (to the next comma, sentence end or bracket), at most `size` characters. */
function clauseAfter(text: string, end: number, size = 40): string {
  const window = text.slice(end, end + size);
  const stop = window.search(/[,;!?\n(]|\.(?!\d)/);
  return stop < 0 ? window : window.slice(0, stop);
}

/**
 * True when the statement at [start, end) is negated, hypothetical or doubted by its clause. With
 * `commas`, a comma ends the clause before: right for statements anchored on their own marker ("s/p",
 * "prior"), where "No urinary symptoms, s/p RP" must still count; wrong for site lists after one
 * negation ("No lymphadenopathy, bone metastases or visceral lesions").
 */
function isQualified(text: string, start: number, end: number, commas = false): boolean {
  const before = clauseBefore(text, start, 48, commas);
  return NEGATION.test(before) || HYPOTHETICAL.test(before) || AFTER_DENIAL.test(clauseAfter(text, end));
}

// ---------------------------------------------------------------------------------------------------
// Age and sex

const SEX_WORDS: Readonly<Record<string, 'male' | 'female'>> = {
  m: 'male', male: 'male', man: 'male', gentleman: 'male',
  f: 'female', female: 'female', woman: 'female', lady: 'female',
};

const ETHNICITY = String.raw`(?:(?:white|black|asian|caucasian|hispanic|latino|african[\s-]american|afro[\s-]caribbean)\s{1,3})?`;
const AGE_YEARS_OLD = new RegExp(
  String.raw`(?<![\w.,/-])(?<age>(?<value>\d{1,3})(?:\s{0,2}-\s{0,2}|\s{1,2})?(?:years?|yrs?)(?:\s{0,2}-\s{0,2}|\s{1,2})(?:old|of\s{1,3}age)\b)` +
  String.raw`(?:\s{1,3}${ETHNICITY}(?<sex>man|male|gentleman|woman|female|lady)\b)?`,
  'dgi',
);
const AGE_YO = new RegExp(String.raw`(?<![\w.,/-])(?<age>(?<value>\d{1,3})\s{0,2}(?:yo|y\/o|y\.o\.?)(?![A-Za-z]))(?:\s{0,3}(?<sex>m|f|male|female|man|woman)(?![A-Za-z/]))?`, 'dgi');
const AGE_LABEL = new RegExp(String.raw`(?<!\bat\s{1,3})\b(?:aged?|age\s{1,3}of)(?<link>\s{0,3}[:=]?)\s{0,3}(?:(?<value>[-−]?\d{1,3}(?:[.,]\d{1,2})?)(?!\d)(?:\s{0,2}(?:years?|yrs?)\b)?|(?<word>${WORD}))`, 'dgi');
const SEX_LABEL = new RegExp(String.raw`\b(?:sex|gender)(?<link>\s{0,3}[:=]?)\s{0,3}(?:(?<value>male|female|man|woman|m|f)(?![A-Za-z])|(?<word>${WORD}))`, 'dgi');

function readAge(text: string): Observation[] {
  const out: Observation[] = [];
  for (const pattern of [AGE_YEARS_OLD, AGE_YO, AGE_LABEL]) {
    for (const m of statements(text, pattern, 'age', out)) {
      const { value, word, link, sex } = m.groups ?? {};
      // With a sex word after the age ("68-year-old man"), the age span stops before it.
      const evidence = [group(text, m, 'age') ?? whole(text, m)];
      if (value !== undefined) {
        const reading = parseDecimal(value);
        out.push('value' in reading ? observeNumber('age', reading.value, evidence) : unparseable('age', value, reading.reason, evidence));
      } else if (word !== undefined && isValueSlot(link, word)) {
        out.push(unparseable('age', word, 'is not a number', evidence));
      }
      const sexSpan = group(text, m, 'sex');
      const sexValue = sex && SEX_WORDS[sex.toLowerCase()];
      if (sexSpan && sexValue) out.push({ feature: 'sex', value: sexValue, evidence: [sexSpan] });
    }
  }
  for (const m of statements(text, SEX_LABEL, 'sex', out)) {
    const { value, word, link } = m.groups ?? {};
    const sex = value && SEX_WORDS[value.toLowerCase()];
    if (sex) out.push({ feature: 'sex', value: sex, evidence: [whole(text, m)] });
    else if (word !== undefined && isValueSlot(link, word)) out.push(unparseable('sex', word, 'is not male or female', [whole(text, m)]));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// PSA

const PSA_LINK = String.raw`(?<link>(?:\s{0,3}(?:[:=]|\b(?:levels?|values?|results?|total|serum|was|is|of|at|to|measured|today|recently|now|elevated|raised|increased|rising|rose|at\s{1,3}(?:diagnosis|presentation|baseline|referral))\b)){0,4})\s{0,3}`;
const PSA = new RegExp(
  // Free and complexed PSA, density, velocity, doubling time and nadir are other quantities; a PSA the
  // note marks as earlier ("previous PSA 6.2") is history, and reading it would contradict the current one.
  String.raw`(?<!\b(?:free|complexed|bound|previous|prior|earlier|old|initial|baseline)[\s-]{0,3})\bPSA\b(?![\s-]{0,3}(?:density|velocity|doubling|DT\b|kinetics|ratio|nadir|bounce|%))` +
  PSA_LINK +
  String.raw`(?:(?<bound>[<>≤≥]\s{0,2})?(?<number>${NUMBER})(?<range>\s{0,2}[-–]\s{0,2}\d{1,9}(?:[.,]\d{1,9})?)?(?:\s{0,2}(?<unit>[A-Za-zµμ]{1,4}\s?\/\s?[A-Za-z]{1,3})\b)?|(?<word>${WORD}))`,
  'dgi',
);
/**
 * After a bare number: a percentage (free PSA ratio), a time ("PSA 6 months ago") or the rest of a
 * date ("PSA 03/2024: 6.1"), so not a PSA value.
 */
const NOT_A_PSA_VALUE = /^(?:\s{0,2}(?:%|(?:months?|mos?|years?|yrs?|weeks?|wks?|days?)\b)|\s?\/\s?\d)/i;
/** "12.03.2024" is a date, not a malformed number. */
const DATE = /^\d{1,4}[./-]\d{1,2}[./-]\d{2,4}$/;

function readPsa(text: string): Observation[] {
  const out: Observation[] = [];
  for (const m of statements(text, PSA, 'psa', out)) {
    const { bound, number, range, unit, word, link } = m.groups ?? {};
    const evidence = [whole(text, m)];
    const shown = text.slice(m.indices?.groups?.['number']?.[0] ?? m.index, m.index + m[0].length);
    if (number === undefined) {
      if (word !== undefined && isValueSlot(link, word)) out.push(unparseable('psa', word, 'is not a number', evidence));
      continue;
    }
    if (DATE.test(number) || (unit === undefined && NOT_A_PSA_VALUE.test(text.slice(m.index + m[0].length, m.index + m[0].length + 12)))) continue;
    if (bound !== undefined) {
      out.push(unparseable('psa', `${bound.trim()}${shown}`, 'is a detection limit, not a measured value', evidence));
      continue;
    }
    if (range !== undefined) {
      out.push(unparseable('psa', shown, 'is a range, not one value', evidence));
      continue;
    }
    const reading = parseDecimal(number);
    if (!('value' in reading)) {
      out.push(unparseable('psa', number, reading.reason, evidence));
      continue;
    }
    const psa = unit === undefined ? reading.value : psaInNgPerMl(reading.value, unit);
    if (psa === undefined) {
      out.push({
        feature: 'psa',
        evidence,
        problem: { code: 'UNKNOWN_UNIT', message: `PSA '${shown}' is in '${unit ?? ''}', which is not a unit total PSA is reported in (ng/mL or µg/L)` },
      });
      continue;
    }
    out.push(observeNumber('psa', psa, evidence));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Gleason score and grade group

const GLEASON = new RegExp(
  String.raw`\b(?:Gleason|GS)(?:\s{1,3}(?<qualifier>score|sum|grade|pattern)s?)?` + LINK +
  String.raw`(?:(?<primary>\d{1,2})\s{0,2}\+\s{0,2}(?<secondary>\d{1,2})(?!\d)(?:\s{0,2}=\s{0,2}(?<sum>\d{1,2})(?!\d))?` +
  String.raw`|(?<score>\d{1,2})(?![\d+]|[.,]\d|\s{1,2}\+)(?:\s{0,2}\(\s{0,2}(?<primaryInside>\d{1,2})\s{0,2}\+\s{0,2}(?<secondaryInside>\d{1,2})\s{0,2}\))?` +
  String.raw`|(?<word>${WORD}))`,
  'dgi',
);
const GRADE_GROUP = new RegExp(String.raw`\b(?:(?:ISUP|WHO)\s{1,3})?(?:grade[\s-]{0,3}group|GG)` + LINK + String.raw`(?:(?<value>\d{1,2}(?:[.,]\d{1,2})?)(?!\d)|(?<word>${WORD}))`, 'dgi');
const ISUP_GRADE = /\bISUP(?:\s{1,3}grade(?![\s-]{0,3}group))?(?<link>\s{0,3}[:=]?)\s{0,3}(?<value>\d{1,2})(?![\d.,]?\d)/dgi;

function readGleason(text: string): Observation[] {
  const out: Observation[] = [];
  for (const m of statements(text, GLEASON, 'gleason_score', out)) {
    const g = m.groups ?? {};
    const evidence = [whole(text, m)];
    const part = (digits: string | undefined): GleasonPart | undefined => (digits === undefined ? undefined : { value: Number(digits), evidence });
    if (g['primary'] !== undefined) {
      out.push(...gleasonObservations({ primary: part(g['primary']), secondary: part(g['secondary']), score: part(g['sum']), quote: `'${evidence[0]?.text ?? ''}'` }));
    } else if (g['score'] !== undefined) {
      // "Gleason pattern 5" and "Gleason grade 4" name one pattern (a tertiary one, often), not a score.
      const qualifier = g['qualifier']?.toLowerCase();
      if (g['primaryInside'] === undefined && (qualifier === 'pattern' || qualifier === 'grade')) continue;
      out.push(...gleasonObservations({ primary: part(g['primaryInside']), secondary: part(g['secondaryInside']), score: part(g['score']), quote: `'${evidence[0]?.text ?? ''}'` }));
    } else if (g['word'] !== undefined && isValueSlot(g['link'], g['word'])) {
      out.push(unparseable('gleason_score', g['word'], 'is not a number', evidence));
    }
  }
  for (const pattern of [GRADE_GROUP, ISUP_GRADE]) {
    for (const m of statements(text, pattern, 'grade_group', out)) {
      const { value, word, link } = m.groups ?? {};
      const evidence = [whole(text, m)];
      if (value !== undefined) {
        const reading = parseDecimal(value);
        out.push('value' in reading ? observeNumber('grade_group', reading.value, evidence) : unparseable('grade_group', value, reading.reason, evidence));
      } else if (word !== undefined && isValueSlot(link, word)) {
        out.push(unparseable('grade_group', word, 'is not a number', evidence));
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// TNM: clinical T category and M

// Case-sensitive: "CT" is computed tomography, and lower-case "t2" is not how stages are written.
const TNM = /(?<![A-Za-z0-9])(?<tpart>(?<prefix>[cpy]{0,2})T(?<category>[0-4X])(?<sub>[a-e])?)(?:\s{0,2}(?<npart>[cpy]{0,2}N[0-3X][a-c]?))?(?:\s{0,2}(?<mpart>[cpy]{0,2}M(?<m>[01X])(?<msub>[a-e])?))?(?![A-Za-z0-9-])/dg;
const M_ALONE = /(?<![A-Za-z0-9])(?<mpart>[cp]M(?<m>[01X])(?<msub>[a-e])?)(?![A-Za-z0-9-])/dg;
/** A bare "T2" is a stage only when the clause says so: "clinical stage T1c", "T-stage: T3a". */
const STAGE_CONTEXT = /\bstag(?:e|ed|ing)\b|\bT[\s-]?category\b/i;

function readMCategory(text: string, m: Match, out: Observation[]): void {
  const mpart = group(text, m, 'mpart');
  const category = m.groups?.['m'];
  if (!mpart || category === undefined || category === 'X') return;
  const sub = m.groups?.['msub'];
  if (category === '0' && sub !== undefined) out.push(unparseable('metastasis', mpart.text, 'is not an M category (M0 has no subcategories)', [mpart]));
  else if (sub !== undefined && !'abc'.includes(sub)) out.push(unparseable('metastasis', mpart.text, 'is not an M category (AJCC 8th edition: M1a, M1b, M1c)', [mpart]));
  else out.push({ feature: 'metastasis', value: category === '1', evidence: [mpart] });
}

function readStage(text: string): Observation[] {
  const out: Observation[] = [];
  for (const m of statements(text, TNM, 't_stage', out)) {
    const { prefix = '', category = '', sub = '', npart, mpart } = m.groups ?? {};
    const tpart = group(text, m, 'tpart');
    readMCategory(text, m, out);
    // pT (after surgery) and yT (after therapy) are other measurements than the clinical T stage.
    if (!tpart || (prefix !== '' && prefix !== 'c') || category === 'X') continue;
    if (prefix === '' && npart === undefined && mpart === undefined && !STAGE_CONTEXT.test(clauseBefore(text, m.index, 32))) continue;
    if (category === '0') {
      out.push({ feature: 't_stage', evidence: [tpart], problem: { code: 'OUT_OF_RANGE', message: `T stage '${tpart.text}' (no evidence of a primary tumour) is outside T1–T4` } });
      continue;
    }
    const code = encodeTStage(`T${category}${sub}`);
    out.push(code === undefined
      ? unparseable('t_stage', tpart.text, 'is not a prostate T category (AJCC 8th edition)', [tpart])
      : observeNumber('t_stage', code, [tpart]));
  }
  for (const m of statements(text, M_ALONE, 'metastasis', out)) readMCategory(text, m, out);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Percentage of positive cores

const CORES = String.raw`(?:cores|core\s{1,3}biopsies)\b`;
const CORE_WORDS = String.raw`(?:(?:positive|involved|biops(?:y|ied)|systematic|targeted|sampled|needle|total|core)\s{1,3}){0,3}`;
const CORE_STATUS = String.raw`(?:\s{1,3}(?:were\s{1,3}|are\s{1,3})?(?<status>positive|involved|negative|benign|uninvolved)\b)?`;
const CORES_FRACTION = new RegExp(String.raw`(?<![\d.,/])(?<positive>\d{1,3})\s{0,2}(?:\/|\bof\b|\bout\s{1,3}of\b)\s{0,2}(?<total>\d{1,3})(?![.,]?\d)\s{0,3}${CORE_WORDS}${CORES}${CORE_STATUS}`, 'dgi');
const CORES_PERCENT = new RegExp(String.raw`(?<![\d.,])(?<percent>\d{1,3}(?:[.,]\d{1,2})?)\s{0,2}%\s{0,3}(?:of\s{1,3}(?:the\s{1,3}|all\s{1,3})?)?${CORE_WORDS}${CORES}${CORE_STATUS}`, 'dgi');
const CORES_LABEL = new RegExp(
  String.raw`\b(?:(?:percent(?:age)?|%)\s{0,3}(?:of\s{1,3})?)?positive\s{1,3}cores(?<link>\s{0,3}[:=])\s{0,3}` +
  String.raw`(?:(?<positive>\d{1,3})\s{0,2}\/\s{0,2}(?<total>\d{1,3})(?!\d)|(?<percent>\d{1,3}(?:[.,]\d{1,2})?)(?![\d.,])(?:\s{0,2}%)?|(?<word>${WORD}))`,
  'dgi',
);

function readCores(text: string): Observation[] {
  const out: Observation[] = [];
  for (const pattern of [CORES_FRACTION, CORES_PERCENT, CORES_LABEL]) {
    for (const m of statements(text, pattern, 'pct_positive_cores', out)) {
      const { positive, total, percent, status, word, link } = m.groups ?? {};
      // "10/12 cores negative" counts the benign cores; reading it as positive would invert it.
      if (status !== undefined && /^(?:negative|benign|uninvolved)$/i.test(status)) continue;
      const evidence = [whole(text, m)];
      if (positive !== undefined && total !== undefined) {
        const k = Number(positive);
        const n = Number(total);
        if (n === 0) {
          out.push(unparseable('pct_positive_cores', evidence[0]?.text ?? '', 'has no cores to count', evidence));
        } else if (k > n) {
          out.push({ feature: 'pct_positive_cores', evidence, problem: { code: 'OUT_OF_RANGE', message: `'${evidence[0]?.text ?? ''}' counts ${k} positive cores of ${n}` } });
        } else {
          out.push(observeNumber('pct_positive_cores', Math.round((1000 * k) / n) / 10, evidence));
        }
      } else if (percent !== undefined) {
        const reading = parseDecimal(percent);
        out.push('value' in reading ? observeNumber('pct_positive_cores', reading.value, evidence) : unparseable('pct_positive_cores', percent, reading.reason, evidence));
      } else if (word !== undefined && isValueSlot(link, word)) {
        out.push(unparseable('pct_positive_cores', word, 'is not a number', evidence));
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Prior treatment

const MODIFIERS = String.raw`(?:(?:a|an|the|his|primary|salvage|adjuvant|neoadjuvant|definitive|curative|local|robot(?:ic)?(?:[\s-]assisted)?|laparoscopic|open|radical|retropubic|perineal|nerve[\s-]sparing|external[\s-]beam|pelvic|prostate|stereotactic|intermittent|continuous|short[\s-]term|long[\s-]term)\s{1,3}){0,4}`;
const TREATMENTS = [
  String.raw`prostatectomy|RP|RALP|RARP|RRP|LRP`,
  String.raw`radiotherapy|radiation(?:\s{1,3}therapy)?|EBRT|IMRT|VMAT|SBRT|SABR|brachytherapy|proton\s{1,3}therapy`,
  String.raw`ADT|androgen[\s-]deprivation(?:\s{1,3}therapy)?|hormon(?:e|al)\s{1,3}therapy|LHRH\s{1,3}(?:agonist|analogue)s?|GnRH\s{1,3}(?:agonist|antagonist)s?`,
  String.raw`leuprolide|leuprorelin|goserelin|triptorelin|degarelix|relugolix|bicalutamide|abiraterone|enzalutamide|apalutamide|darolutamide`,
  String.raw`HIFU|cryotherapy|cryoablation|focal\s{1,3}therapy|chemotherapy|docetaxel|cabazitaxel|active\s{1,3}surveillance`,
].join('|');
/**
 * A treatment aimed at something other than the prostate ("radiotherapy to the rectum") is not read.
 * The article must be consumed before the target is tested; were it optional, the inner look-ahead
 * would test the article itself ("the") and let any target through.
 */
const OTHER_TARGET = String.raw`(?!\s{1,3}(?:for|to|of)\s{1,3}(?:(?:his|the|a)\s{1,3})?(?!(?:his|the|a)\b)(?!prostat|PCa\b|pelvi|cancer\b|adenocarcinoma|carcinoma|disease\b|it\b|this\b))`;
const PRIOR_TREATMENT = new RegExp(
  String.raw`\b(?:prior|previous(?:ly)?|history\s{1,3}of|h\/o|s\/p|status\s{1,3}post|post|after|following|underwent|received|completed|treated\s{1,3}(?:with|by)|had|on|under(?:going)?|receiving|started\s{1,3}(?:on)?|enrolled\s{1,3}(?:in|on))[\s-]{1,3}` +
  MODIFIERS + String.raw`(?:${TREATMENTS})\b${OTHER_TARGET}` +
  // The generic words only with a past marker: "on treatment" and "under therapy" say too little.
  String.raw`|\b(?:prior|previous(?:ly)?|history\s{1,3}of|h\/o)\s{1,3}(?:(?:prostate\s{1,3})?cancer\s{1,3})?(?:treatments?|therap(?:y|ies))\b${OTHER_TARGET}`,
  'dgi',
);
const NO_PRIOR_TREATMENT = new RegExp(
  String.raw`\b(?:treatment|therapy)[\s-]?na[iï]ve\b` +
  String.raw`|\b(?:previously\s{1,3})?untreated(?=\s{1,3}(?:prostate|PCa\b|adenocarcinoma|disease|cancer))` +
  String.raw`|\b(?:no|denies|denied|without|never\s{1,3}(?:had|received))\s{1,3}(?:any\s{1,3})?(?:prior|previous)\s{1,3}(?:prostate\s{1,3})?(?:cancer\s{1,3})?(?:treatments?|therap(?:y|ies))\b` +
  String.raw`|\b(?:prior|previous)\s{1,3}(?:treatments?|therap(?:y|ies))\s{0,3}[:=-]\s{0,3}(?:none|nil|no)\b` +
  String.raw`|\b(?:not|never)\s{1,3}(?:had|received|undergone)\s{1,3}(?:any\s{1,3})?(?:prior\s{1,3}|previous\s{1,3})?(?:treatments?|therap(?:y|ies))\b${OTHER_TARGET}` +
  String.raw`|\bnot\s{1,3}previously\s{1,3}treated\b|\bnever\s{1,3}(?:been\s{1,3})?treated\b|\bno\s{1,3}(?:treatment|therapy)\s{1,3}(?:to\s{1,3}date|so\s{1,3}far|yet)\b`,
  'dgi',
);

function readPriorTreatment(text: string): Observation[] {
  const out: Observation[] = [];
  for (const m of statements(text, PRIOR_TREATMENT, 'prior_treatment', out)) {
    if (isQualified(text, m.index, m.index + m[0].length, true)) continue;
    out.push({ feature: 'prior_treatment', value: true, evidence: [whole(text, m)] });
  }
  for (const m of statements(text, NO_PRIOR_TREATMENT, 'prior_treatment', out)) out.push({ feature: 'prior_treatment', value: false, evidence: [whole(text, m)] });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Distant metastasis

const METASTASIS_NOUN = String.raw`metasta(?:sis|ses|tic\s{1,3}(?:disease|deposits?|lesions?))`;
// Regional lymph nodes are N1, not M1: "nodal metastases" is deliberately not a site here.
const DISTANT_SITES = String.raw`(?:distant|bone|bony|osseous|skeletal|liver|hepatic|lung|pulmonary|visceral|brain|adrenal|widespread|diffuse|multiple|extensive)`;
const METASTASIS = new RegExp(
  String.raw`\b(?:${DISTANT_SITES}\s{1,3}){1,3}${METASTASIS_NOUN}\b` +
  String.raw`|\b${METASTASIS_NOUN}\s{1,3}(?:to|in|of|involving)\s{1,3}(?:the\s{1,3})?(?:bones?|liver|lungs?|spine|skeleton|brain|adrenals?|ribs?|pelvis|vertebra[el]?|skull|femur|sacrum)\b` +
  String.raw`|\bmetastatic\s{1,3}(?:(?:castration|hormone)[\s-](?:resistant|sensitive|naive|naïve)\s{1,3})?(?:prostate\s{1,3})?(?:cancer|adenocarcinoma|carcinoma|disease)\b` +
  String.raw`|\bm(?:CRPC|HSPC|CSPC)\b`,
  'dgi',
);
const NO_METASTASIS = new RegExp(
  String.raw`\b(?:no|without|negative\s{1,3}for|free\s{1,3}of|absence\s{1,3}of)\s{1,3}(?:(?:evidence|signs?|radiographic|radiologic(?:al)?|imaging|distant|definite|definitive|any|of|for)\s{1,3}){0,4}(?:metasta(?:sis|ses)|metastatic\s{1,3}disease)\b` +
  String.raw`|\bmetasta(?:sis|ses)\s{0,3}[:=-]\s{0,3}(?:none|nil|no|absent|negative)\b|\bnon[\s-]?metastatic\b|\bnm(?:CRPC|HSPC|CSPC)\b`,
  'dgi',
);

function readMetastasis(text: string): Observation[] {
  const out: Observation[] = [];
  for (const m of statements(text, METASTASIS, 'metastasis', out)) {
    if (isQualified(text, m.index, m.index + m[0].length)) continue;
    out.push({ feature: 'metastasis', value: true, evidence: [whole(text, m)] });
  }
  for (const m of statements(text, NO_METASTASIS, 'metastasis', out)) out.push({ feature: 'metastasis', value: false, evidence: [whole(text, m)] });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// ECOG performance status

const ECOG = new RegExp(
  String.raw`\b(?:ECOG(?:[\s-]{1,3}(?:PS|performance(?:\s{1,3}status)?))?|(?:WHO|Zubrod)[\s-]{1,3}(?:PS|performance(?:\s{1,3}status)?))` + LINK +
  String.raw`(?:(?<value>\d{1,2}(?:[.,]\d)?)(?<range>\s{0,2}[-–/]\s{0,2}\d)?(?![.,]?\d)|(?<word>${WORD}))`,
  'dgi',
);

function readEcog(text: string): Observation[] {
  const out: Observation[] = [];
  for (const m of statements(text, ECOG, 'ecog', out)) {
    const { value, range, word, link } = m.groups ?? {};
    const evidence = [whole(text, m)];
    if (value !== undefined) {
      const reading = parseDecimal(value);
      if (range !== undefined) out.push(unparseable('ecog', `${value}${range}`, 'is a range, not one value', evidence));
      else out.push('value' in reading ? observeNumber('ecog', reading.value, evidence) : unparseable('ecog', value, reading.reason, evidence));
    } else if (word !== undefined && isValueSlot(link, word)) {
      out.push(unparseable('ecog', word, 'is not a number', evidence));
    }
  }
  return out;
}

const READERS: ReadonlyArray<(text: string) => Observation[]> = [readAge, readPsa, readGleason, readStage, readCores, readPriorTreatment, readMetastasis, readEcog];

function emptyNote(message: string): ClinicalFeatures {
  return resolveFeatures([], { leading: [{ code: 'NO_NOTE', message }] });
}

/**
 * Reads the catalogue features from a free-text note. Throws INVALID_REQUEST for a note longer than
 * MAX_NOTE_CHARS; an empty or blank note gives every value null and a NO_NOTE issue.
 */
export function parseClinicalNote(text: string, options: NoteOptions = {}): ClinicalFeatures {
  const maxChars = options.maxChars ?? MAX_NOTE_CHARS;
  if (text.length > maxChars) {
    throw new AppError('INVALID_REQUEST', `The clinical note has ${text.length} characters; the limit is ${maxChars}. Send the relevant part of the note (history, PSA, biopsy findings, stage)`);
  }
  if (text.trim() === '') return emptyNote('The clinical note is empty');
  return resolveFeatures(READERS.flatMap((read) => read(text)));
}

export interface NoteInput {
  /** Free-text note. */
  text?: string | null | undefined;
  /** Structured note: an object keyed by catalogue feature names. */
  json?: unknown;
}

/**
 * Reads whichever form of the note the case has. No note at all gives every value null and a NO_NOTE
 * issue; a case that sends both forms is refused, because which one to believe is not ours to guess.
 */
export function parseNote(input: NoteInput | undefined, options: NoteOptions = {}): ClinicalFeatures {
  const hasText = input?.text !== undefined && input.text !== null;
  const hasJson = input?.json !== undefined && input.json !== null;
  if (hasText && hasJson) {
    throw new AppError('INVALID_REQUEST', 'The case has both a free-text and a structured clinical note; send one of them');
  }
  if (hasText) {
    if (typeof input.text !== 'string') throw new AppError('INVALID_REQUEST', 'The clinical note text must be a string');
    return parseClinicalNote(input.text, options);
  }
  if (hasJson) return parseStructuredNote(input.json);
  return emptyNote('The case has no clinical note');
}

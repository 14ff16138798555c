import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseClinicalNote } from '../../src/clinical/note.ts';
import { assertFeatures, type Expected } from './support.ts';

// Realistic note variants, each checked completely: every value, every span (text and offsets), every
// issue. The notes are synthetic and written the ways urology and pathology notes write these facts.

const G34 = ['Gleason 3+4=7'];

const NOTES: Array<{ name: string; text: string } & Expected> = [
  {
    name: 'a full clinic letter with history, imaging, pathology and a plan',
    text: [
      'UROLOGY CLINIC LETTER',
      'I reviewed Mr A, a 71-year-old retired teacher, today. He was referred in March 2024 with a PSA of 9.6 ng/ml (previous PSA 6.2 ng/ml in 2022).',
      'PMH: T2DM, hypertension, TURP 2015. No family history of prostate cancer.',
      'MRI prostate: T2-weighted and DWI sequences show a 12 mm PI-RADS 5 lesion in the left PZ. Staging: cT2a N0 M0.',
      'Biopsy (transperineal, 24 cores): adenocarcinoma, Gleason score 4+3=7 (ISUP grade group 3), 5/24 cores positive, max core involvement 60%.',
      'PSMA PET: no evidence of nodal or distant metastases.',
      'ECOG 0. He has not had any treatment for prostate cancer so far.',
      'Plan: discussed radical prostatectomy vs external beam radiotherapy with 6 months ADT.',
    ].join('\n'),
    values: { age: 71, psa: 9.6, gleason_primary: 4, gleason_secondary: 3, gleason_score: 7, grade_group: 3, t_stage: 2.1, pct_positive_cores: 20.8, prior_treatment: false, ecog: 0, metastasis: false },
    spans: {
      age: ['71-year-old'], psa: ['PSA of 9.6 ng/ml'], t_stage: ['cT2a'], metastasis: ['M0'],
      gleason_primary: ['Gleason score 4+3=7'], gleason_secondary: ['Gleason score 4+3=7'], gleason_score: ['Gleason score 4+3=7'],
      grade_group: ['Gleason score 4+3=7', 'ISUP grade group 3'], pct_positive_cores: ['5/24 cores positive'], ecog: ['ECOG 0'],
      prior_treatment: ['not had any treatment'],
    },
  },
  {
    name: 'narrative referral note',
    text: '68-year-old man presenting with PSA 12.4 ng/mL. TRUS biopsy: Gleason 3+4=7 in 4 of 12 cores. Clinical stage T1c. No prior treatment.',
    values: { age: 68, sex: 'male', psa: 12.4, gleason_primary: 3, gleason_secondary: 4, gleason_score: 7, grade_group: 2, t_stage: 1.3, pct_positive_cores: 33.3, prior_treatment: false },
    spans: { age: ['68-year-old'], sex: ['man'], psa: ['PSA 12.4 ng/mL'], gleason_primary: G34, gleason_secondary: G34, gleason_score: G34, grade_group: G34, t_stage: ['T1c'], pct_positive_cores: ['4 of 12 cores'], prior_treatment: ['No prior treatment'] },
  },
  {
    name: 'terse clinic shorthand with decimal comma and a TNM string',
    text: '72 yo M, PSA: 4,5 ng/ml, GS 8, cT2b N0 M0. S/p TURP 2019 for BPH.',
    values: { age: 72, sex: 'male', psa: 4.5, gleason_score: 8, grade_group: 4, t_stage: 2.2, metastasis: false },
    spans: { age: ['72 yo'], sex: ['M'], psa: ['PSA: 4,5 ng/ml'], gleason_score: ['GS 8'], grade_group: ['GS 8'], t_stage: ['cT2b'], metastasis: ['M0'] },
  },
  {
    name: 'labelled fields with score-first Gleason and a stated grade group that agrees',
    text: 'Age: 64\nSex: male\nPSA of 7\nGleason score 7 (4+3), ISUP grade group 3\n6/12 cores positive\nTreatment-naive.',
    values: { age: 64, sex: 'male', psa: 7, gleason_primary: 4, gleason_secondary: 3, gleason_score: 7, grade_group: 3, pct_positive_cores: 50, prior_treatment: false },
    spans: {
      age: ['Age: 64'], sex: ['Sex: male'], psa: ['PSA of 7'],
      gleason_primary: ['Gleason score 7 (4+3)'], gleason_secondary: ['Gleason score 7 (4+3)'], gleason_score: ['Gleason score 7 (4+3)'],
      grade_group: ['Gleason score 7 (4+3)', 'ISUP grade group 3'], pct_positive_cores: ['6/12 cores positive'], prior_treatment: ['Treatment-naive'],
    },
  },
  {
    name: 'MRI-pathway note in µg/L with a GG abbreviation',
    text: '59 y/o male referred for rising PSA (PSA 5.8 µg/L). MRI PI-RADS 4. Targeted + systematic biopsy: 3/14 cores positive, GG1 (Gleason 3+3=6). cT2a. ECOG 0.',
    values: { age: 59, sex: 'male', psa: 5.8, gleason_primary: 3, gleason_secondary: 3, gleason_score: 6, grade_group: 1, t_stage: 2.1, pct_positive_cores: 21.4, ecog: 0 },
    spans: {
      age: ['59 y/o'], sex: ['male'], psa: ['PSA 5.8 µg/L'], pct_positive_cores: ['3/14 cores positive'], grade_group: ['GG1', 'Gleason 3+3=6'],
      gleason_primary: ['Gleason 3+3=6'], gleason_secondary: ['Gleason 3+3=6'], gleason_score: ['Gleason 3+3=6'], t_stage: ['cT2a'], ecog: ['ECOG 0'],
    },
  },
  {
    name: 'metastatic castration-resistant disease on systemic therapy',
    text: 'Mr X is a 77-year-old gentleman with metastatic castration-resistant prostate cancer, bone metastases to the spine. Previously treated with ADT and docetaxel. ECOG performance status 2. PSA 230 ng/mL.',
    values: { age: 77, sex: 'male', psa: 230, prior_treatment: true, ecog: 2, metastasis: true },
    spans: {
      age: ['77-year-old'], sex: ['gentleman'], metastasis: ['metastatic castration-resistant prostate cancer', 'bone metastases'],
      prior_treatment: ['treated with ADT'], ecog: ['ECOG performance status 2'], psa: ['PSA 230 ng/mL'],
    },
  },
  {
    name: 'after prostatectomy: the pathological stage is not the clinical T stage',
    text: 'History: 66-year-old, prior radical prostatectomy (2016), now PSA 0.4 ng/mL. Pathology pT3a N0, Gleason 4+3=7.',
    values: { age: 66, psa: 0.4, gleason_primary: 4, gleason_secondary: 3, gleason_score: 7, grade_group: 3, prior_treatment: true },
    spans: {
      age: ['66-year-old'], prior_treatment: ['prior radical prostatectomy'], psa: ['PSA 0.4 ng/mL'],
      gleason_primary: ['Gleason 4+3=7'], gleason_secondary: ['Gleason 4+3=7'], gleason_score: ['Gleason 4+3=7'], grade_group: ['Gleason 4+3=7'],
    },
  },
  {
    name: 'on active surveillance, with "aged" and a labelled stage',
    text: 'Patient aged 70 years, on active surveillance since 2021 for GG1 disease. Latest PSA 6.1 ng/mL; 2 of 12 cores on repeat biopsy. Clinical stage: T1c.',
    values: { age: 70, psa: 6.1, grade_group: 1, t_stage: 1.3, pct_positive_cores: 16.7, prior_treatment: true },
    spans: { age: ['aged 70 years'], prior_treatment: ['on active surveillance'], grade_group: ['GG1'], psa: ['PSA 6.1 ng/mL'], pct_positive_cores: ['2 of 12 cores'], t_stage: ['T1c'] },
  },
  {
    name: 'female patient in "yo F" shorthand (parsed as written)',
    text: '82yo F with PSA 3.2',
    values: { age: 82, sex: 'female', psa: 3.2 },
    spans: { age: ['82yo'], sex: ['F'], psa: ['PSA 3.2'] },
  },
  {
    name: 'denial of prior treatment, labelled positive cores, negated metastasis',
    text: 'Denies prior treatment. cT3b. Positive cores: 9/12. No evidence of metastatic disease (M0).',
    values: { t_stage: 3.2, pct_positive_cores: 75, prior_treatment: false, metastasis: false },
    spans: { prior_treatment: ['Denies prior treatment'], t_stage: ['cT3b'], pct_positive_cores: ['Positive cores: 9/12'], metastasis: ['No evidence of metastatic disease'] },
  },
  {
    name: 'clinical TNM with prefixes on every category',
    text: 'Staging: cT2c cN0 cM0',
    values: { t_stage: 2.3, metastasis: false },
    spans: { t_stage: ['cT2c'], metastasis: ['cM0'] },
  },
  {
    name: 'a T category and its subcategory agree; the subcategory is kept',
    text: 'cT2 on DRE, cT2b on MRI',
    values: { t_stage: 2.2 },
    spans: { t_stage: ['cT2', 'cT2b'] },
  },
  {
    name: 'WHO performance status and a percentage of cores',
    text: 'WHO performance status 1. 33% of cores involved.',
    values: { ecog: 1, pct_positive_cores: 33 },
    spans: { ecog: ['WHO performance status 1'], pct_positive_cores: ['33% of cores involved'] },
  },
  {
    name: 'a fraction of cores and the same fraction rounded in the note agree',
    text: '4/12 cores positive (33% of cores)',
    values: { pct_positive_cores: 33.3 },
    spans: { pct_positive_cores: ['4/12 cores positive', '33% of cores'] },
  },
  {
    name: 'negative cores are not read as positive',
    text: '10/12 cores negative; 2/12 cores positive',
    values: { pct_positive_cores: 16.7 },
    spans: { pct_positive_cores: ['2/12 cores positive'] },
  },
  {
    name: 'a metastatic hormone-sensitive case',
    text: 'Metastatic hormone-sensitive prostate cancer (mHSPC), started on ADT in March.',
    values: { metastasis: true, prior_treatment: true },
    spans: { metastasis: ['Metastatic hormone-sensitive prostate cancer', 'mHSPC'], prior_treatment: ['started on ADT'] },
  },
  {
    name: 'the same PSA stated twice is one value',
    text: 'PSA 8.1 ng/mL on 3 March; repeat PSA 8.1 ng/mL.',
    values: { psa: 8.1 },
    spans: { psa: ['PSA 8.1 ng/mL', 'PSA 8.1 ng/mL'] },
  },
  {
    name: 'tertiary pattern and "ISUP 2014" are not grades',
    text: 'Gleason 4+3=7 with tertiary Gleason pattern 5. Graded per ISUP 2014: grade group 3.',
    values: { gleason_primary: 4, gleason_secondary: 3, gleason_score: 7, grade_group: 3 },
    spans: { gleason_primary: ['Gleason 4+3=7'], gleason_secondary: ['Gleason 4+3=7'], gleason_score: ['Gleason 4+3=7'], grade_group: ['Gleason 4+3=7', 'grade group 3'] },
  },
  {
    name: 'spaced Gleason sum and "ISUP 2"',
    text: 'Gleason score 3 + 4 = 7 (ISUP 2).',
    values: { gleason_primary: 3, gleason_secondary: 4, gleason_score: 7, grade_group: 2 },
    spans: {
      gleason_primary: ['Gleason score 3 + 4 = 7'], gleason_secondary: ['Gleason score 3 + 4 = 7'], gleason_score: ['Gleason score 3 + 4 = 7'],
      grade_group: ['Gleason score 3 + 4 = 7', 'ISUP 2'],
    },
  },
  {
    name: 'salvage radiotherapy after a plan sentence: only the past treatment is read',
    text: 'Plan: ADT after radiotherapy. PSA rising after salvage radiotherapy to the prostate bed.',
    values: { prior_treatment: true },
    spans: { prior_treatment: ['after salvage radiotherapy'] },
  },
  {
    name: 'an unrelated negation earlier in the sentence does not hide "s/p"',
    text: 'No urinary symptoms, s/p RP in May 2019. NCCN high risk, s/p radical prostatectomy.',
    values: { prior_treatment: true },
    spans: { prior_treatment: ['s/p RP', 's/p radical prostatectomy'] },
  },
  {
    name: 'explicit "Prior treatment: none"; a negated single modality says nothing',
    text: 'No prior radiotherapy. Prior treatment: none.',
    values: { prior_treatment: false },
    spans: { prior_treatment: ['Prior treatment: none'] },
  },
  {
    name: 'treatment for another disease, hedged metastases, explicit M0 statement',
    text: 'Prior radiotherapy for rectal cancer; possible bone metastases; no distant metastases.',
    values: { metastasis: false },
    spans: { metastasis: ['no distant metastases'] },
  },
  {
    name: 'options discussed and site-limited negation are not read',
    text: 'Candidate for active surveillance vs radical prostatectomy. No bone metastases on bone scan.',
  },
  {
    name: 'MRI sequence names and vertebral levels are not T stages',
    text: 'T2-weighted MRI: lesion in the left peripheral zone, T4 vertebral body unremarkable.',
  },
  {
    name: 'other PSA quantities are not total PSA',
    text: 'PSA density 0.15, free PSA 18%, PSA doubling time 9 months, PSA 6 months ago was normal.',
  },
  {
    name: 'a date next to PSA is not its value',
    text: 'PSA 03/2024: see letter.',
  },
  {
    name: 'ultrasensitive PSA in pg/mL is converted',
    text: 'Post-prostatectomy PSA 15 pg/mL.',
    values: { psa: 0.015, prior_treatment: true },
    spans: { prior_treatment: ['Post-prostatectomy'], psa: ['PSA 15 pg/mL'] },
  },
];

test('reads realistic note variants: values, spans and issues', async (t) => {
  assert.ok(NOTES.length >= 25, 'at least 25 notes');
  for (const note of NOTES) {
    await t.test(note.name, () => assertFeatures(parseClinicalNote(note.text), note, note.text));
  }
});

test('a value that cannot be read is UNPARSEABLE, stays null, and the message quotes it', () => {
  const text = 'PSA: abc. Gleason: pending. Age: unknown. Sex: unknown. ECOG 0-1.';
  const result = parseClinicalNote(text);
  assertFeatures(result, {
    spans: { psa: ['PSA: abc'], gleason_score: ['Gleason: pending'], age: ['Age: unknown'], sex: ['Sex: unknown'], ecog: ['ECOG 0-1'] },
    issues: [['UNPARSEABLE', 'age'], ['UNPARSEABLE', 'sex'], ['UNPARSEABLE', 'psa'], ['UNPARSEABLE', 'gleason_score'], ['UNPARSEABLE', 'ecog']],
  }, text);
  const message = (feature: string) => result.issues.find((i) => i.feature === feature)?.message;
  assert.equal(message('psa'), "PSA 'abc' is not a number; PSA is not used");
  assert.equal(message('sex'), "sex 'unknown' is not male or female; sex is not used");
  assert.match(message('ecog') ?? '', /'0-1' is a range, not one value/);
});

test('"PSA abc" without a colon is prose, not a failed value; "PSA pending" is a placeholder', () => {
  // Words after "PSA" are usually prose ("PSA rising", "PSA screening"); flagging them would withhold
  // usable notes. A colon, or a placeholder word, marks a value slot.
  assertFeatures(parseClinicalNote('PSA abc'), {});
  assertFeatures(parseClinicalNote('PSA pending'), { spans: { psa: ['PSA pending'] }, issues: [['UNPARSEABLE', 'psa']] }, 'PSA pending');
});

test('out-of-range values are reported and not used: negative and impossible ages, negative PSA, Gleason 3+6', () => {
  const text = 'Age: -4. PSA -3 ng/mL. Gleason 3+6. 4/3 cores positive. ECOG: 5.';
  const result = parseClinicalNote(text);
  assertFeatures(result, {
    values: { gleason_primary: 3 },
    spans: {
      age: ['Age: -4'], psa: ['PSA -3 ng/mL'], gleason_primary: ['Gleason 3+6'], gleason_secondary: ['Gleason 3+6'], grade_group: ['Gleason 3+6'],
      pct_positive_cores: ['4/3 cores positive'], ecog: ['ECOG: 5'],
    },
    issues: [
      ['OUT_OF_RANGE', 'age'], ['OUT_OF_RANGE', 'psa'], ['OUT_OF_RANGE', 'gleason_secondary'], ['OUT_OF_RANGE', 'grade_group'],
      ['OUT_OF_RANGE', 'pct_positive_cores'], ['OUT_OF_RANGE', 'ecog'],
    ],
  }, text);
  const messages = result.issues.map((i) => i.message);
  assert.ok(messages.includes('age -4 years is outside the valid range 18–110 years; age is not used'), messages.join('\n'));
  assert.ok(messages.includes('PSA -3 ng/mL is outside the valid range 0–10000 ng/mL; PSA is not used'));
  assert.ok(messages.some((m) => m.startsWith("grade group cannot be derived from 'Gleason 3+6': Gleason secondary pattern 6 is outside")));

  assertFeatures(parseClinicalNote('150-year-old man'), { values: { sex: 'male' }, spans: { age: ['150-year-old'], sex: ['man'] }, issues: [['OUT_OF_RANGE', 'age']] }, '150-year-old man');
  assertFeatures(parseClinicalNote('Stage T0'), { spans: { t_stage: ['T0'] }, issues: [['OUT_OF_RANGE', 't_stage']] }, 'Stage T0');
});

test('two different values are CONTRADICTORY, null, with both spans kept', () => {
  const text = 'PSA 4.2 in January, PSA 12 in June.';
  const result = parseClinicalNote(text);
  assertFeatures(result, { spans: { psa: ['PSA 4.2', 'PSA 12'] }, issues: [['CONTRADICTORY', 'psa']] }, text);
  assert.equal(result.issues[0]?.message, "PSA is given as 4.2 ng/mL ('PSA 4.2') and 12 ng/mL ('PSA 12'); PSA is not used");

  assertFeatures(parseClinicalNote('cT2a at diagnosis, now cT3a'), { spans: { t_stage: ['cT2a', 'cT3a'] }, issues: [['CONTRADICTORY', 't_stage']] }, 'cT2a at diagnosis, now cT3a');
  const people = 'His 40-year-old son is well. The patient is a 68-year-old man.';
  assertFeatures(parseClinicalNote(people), { values: { sex: 'male' }, spans: { age: ['40-year-old', '68-year-old'], sex: ['man'] }, issues: [['CONTRADICTORY', 'age']] }, people);
  const treated = 'Treatment-naive. Prior radical prostatectomy in 2015.';
  assertFeatures(parseClinicalNote(treated), { spans: { prior_treatment: ['Treatment-naive', 'Prior radical prostatectomy'] }, issues: [['CONTRADICTORY', 'prior_treatment']] }, treated);
});

test('Gleason → grade group follows ISUP 2014, and contradictions between them are caught', async (t) => {
  const cases: Array<[string, number | null]> = [
    ['Gleason 3+3=6', 1], ['Gleason 3+4=7', 2], ['Gleason 4+3=7', 3], ['Gleason 4+4=8', 4], ['Gleason 3+5=8', 4],
    ['Gleason 5+3=8', 4], ['Gleason 4+5=9', 5], ['Gleason 5+4=9', 5], ['Gleason 5+5=10', 5],
    ['GS 6', 1], ['GS 8', 4], ['GS 9', 5], ['Gleason score 10', 5],
    // A score of 7 without its patterns is group 2 or 3: not derived.
    ['Gleason score 7', null],
  ];
  for (const [text, group] of cases) {
    await t.test(text, () => {
      const result = parseClinicalNote(text);
      assert.equal(result.values['grade_group'], group);
      assert.deepEqual(result.issues, []);
    });
  }

  await t.test('stated sum differs from the patterns', () => {
    const result = parseClinicalNote('Gleason 3+4=8');
    assertFeatures(result, {
      values: { gleason_primary: 3, gleason_secondary: 4 },
      spans: { gleason_primary: ['Gleason 3+4=8'], gleason_secondary: ['Gleason 3+4=8'], gleason_score: ['Gleason 3+4=8'], grade_group: ['Gleason 3+4=8'] },
      issues: [['CONTRADICTORY', 'gleason_score'], ['CONTRADICTORY', 'grade_group']],
    }, 'Gleason 3+4=8');
    assert.equal(result.issues[0]?.message, 'Gleason 3+4 adds up to 7, but the score is given as 8; Gleason score is not used');
  });
  await t.test('stated grade group differs from the derived one', () => {
    const result = parseClinicalNote('Gleason 3+4, Grade Group 3');
    assertFeatures(result, {
      values: { gleason_primary: 3, gleason_secondary: 4, gleason_score: 7 },
      spans: { gleason_primary: ['Gleason 3+4'], gleason_secondary: ['Gleason 3+4'], gleason_score: ['Gleason 3+4'], grade_group: ['Gleason 3+4', 'Grade Group 3'] },
      issues: [['CONTRADICTORY', 'grade_group']],
    }, 'Gleason 3+4, Grade Group 3');
    assert.equal(result.issues[0]?.message, "grade group is given as 2 ('Gleason 3+4' (derived)) and 3 ('Grade Group 3'); grade group is not used");
  });
  await t.test('two Gleason statements with swapped patterns', () => {
    const text = 'Gleason 3+4=7 (left), Gleason 4+3=7 (right)';
    const both = ['Gleason 3+4=7', 'Gleason 4+3=7'];
    assertFeatures(parseClinicalNote(text), {
      values: { gleason_score: 7 },
      spans: { gleason_primary: both, gleason_secondary: both, gleason_score: both, grade_group: both },
      issues: [['CONTRADICTORY', 'gleason_primary'], ['CONTRADICTORY', 'gleason_secondary'], ['CONTRADICTORY', 'grade_group']],
    }, text);
  });
});

test('PSA units: ng/mL, µg/L (micro sign or Greek mu), ug/L and mcg/L are the same; pg/mL converts; ng/dL is UNKNOWN_UNIT', () => {
  for (const written of ['PSA 9.2 ng/mL', 'PSA 9.2 ng/ml', 'PSA 9.2 NG/ML', 'PSA 9.2 µg/L', 'PSA 9.2 μg/L', 'PSA 9.2 ug/L', 'PSA 9.2 mcg/L', 'PSA 9.2 ng / mL', 'PSA 9.2', 'PSA 9200 pg/mL']) {
    assert.equal(parseClinicalNote(written).values['psa'], 9.2, written);
  }
  const result = parseClinicalNote('PSA 7 ng/dL');
  assertFeatures(result, { spans: { psa: ['PSA 7 ng/dL'] }, issues: [['UNKNOWN_UNIT', 'psa']] }, 'PSA 7 ng/dL');
  assert.equal(result.issues[0]?.message, "PSA '7 ng/dL' is in 'ng/dL', which is not a unit total PSA is reported in (ng/mL or µg/L); PSA is not used");
});

test('decimal commas are read; a comma before three digits is ambiguous', () => {
  assert.equal(parseClinicalNote('PSA: 4,5 ng/ml').values['psa'], 4.5);
  assert.equal(parseClinicalNote('PSA 3,75 ng/ml').values['psa'], 3.75);
  assert.equal(parseClinicalNote('PSA 0,015 ng/ml').values['psa'], 0.015);
  const result = parseClinicalNote('PSA 4,125 ng/ml');
  assertFeatures(result, { spans: { psa: ['PSA 4,125 ng/ml'] }, issues: [['UNPARSEABLE', 'psa']] }, 'PSA 4,125 ng/ml');
  assert.match(result.issues[0]?.message ?? '', /'4,125' is ambiguous/);
});

test('a detection limit and a range are not PSA values', () => {
  assertFeatures(parseClinicalNote('PSA <0.1 ng/mL after RP.'), {
    values: { prior_treatment: true },
    spans: { psa: ['PSA <0.1 ng/mL'], prior_treatment: ['after RP'] },
    issues: [['UNPARSEABLE', 'psa']],
  }, 'PSA <0.1 ng/mL after RP.');
  assertFeatures(parseClinicalNote('PSA 4-6 ng/mL'), { spans: { psa: ['PSA 4-6 ng/mL'] }, issues: [['UNPARSEABLE', 'psa']] }, 'PSA 4-6 ng/mL');
});

test('an empty or whitespace-only note is NO_NOTE with every value null', () => {
  for (const text of ['', '   \n\t  ']) {
    const result = parseClinicalNote(text);
    assertFeatures(result, { issues: [['NO_NOTE', undefined]] }, text);
  }
});

test('a note with none of the features has no values and no issues', () => {
  assertFeatures(parseClinicalNote('Patient seen in clinic today. Voiding well. Follow up in three months.'), {});
});

import { z } from 'zod';
import { parseNote } from '../../clinical/note.ts';
import { ClinicalFeatures } from '../../core/report.ts';
import { defineStage } from '../stage.ts';

/**
 * Reads the case's clinical note (free text or a JSON object) into normalised features with the spans
 * they came from. A missing, unreadable, contradictory or out-of-range value is reported as an issue
 * and left missing — the recommender's policy turns those issues into reasons to escalate.
 */
export const clinicalNoteStage = defineStage({
  name: 'clinical.note',
  description: 'Parses the clinical note (text or JSON) into normalised features with spans and issues.',
  params: z.object({}).strict(),
  output: ClinicalFeatures,
  async run(ctx) {
    const bytes = await ctx.readNote();
    const text = bytes?.toString('utf8');
    const clinical = !bytes || !ctx.note
      ? parseNote(undefined)
      : ctx.note.format === 'json' ? parseNote({ json: JSON.parse(text ?? '{}') as unknown }) : parseNote({ text });
    return { data: clinical, report: { clinical } };
  },
});

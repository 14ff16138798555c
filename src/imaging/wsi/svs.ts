// Aperio SVS metadata. An SVS file is a TIFF whose ImageDescription starts with "Aperio"; the first line
// is free text (library version, then the scan geometry or "label"/"macro"/"thumbnail" for associated
// images), and the rest is a '|'-separated list of "Key = Value" pairs, e.g.
//   Aperio Image Library v12.0.0\r\n46000x32914 [0,100 46000x32914] (256x256) JPEG/RGB Q=70|AppMag = 20|MPP = 0.4990
// The keys are kept as written; OpenSlide reports the same pairs as "aperio.<Key>".

export interface AperioDescription {
  /** The text before the first '|': library line and image summary. */
  header: string;
  properties: Record<string, string>;
  /** 'label' or 'macro' when the header names an associated image. */
  associated: 'label' | 'macro' | undefined;
}

export function isAperioDescription(description: string | undefined): description is string {
  return description !== undefined && description.startsWith('Aperio');
}

export function parseAperioDescription(description: string): AperioDescription {
  const [header = '', ...pairs] = description.split('|');
  const properties: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const key = pair.slice(0, eq).trim();
    if (key !== '') properties[key] = pair.slice(eq + 1).trim();
  }
  // The associated-image word is the first word of the second header line ("label 387x463").
  const secondLine = header.split(/\r?\n/)[1]?.trim().toLowerCase() ?? '';
  const word = secondLine.split(/\s+/)[0];
  return { header: header.trim(), properties, associated: word === 'label' || word === 'macro' ? word : undefined };
}

/** Microns per pixel from the MPP pair, when present and a positive number. */
export function aperioMpp(properties: Record<string, string>): number | undefined {
  const text = properties['MPP'];
  if (text === undefined) return undefined;
  const mpp = Number(text);
  return Number.isFinite(mpp) && mpp > 0 ? mpp : undefined;
}

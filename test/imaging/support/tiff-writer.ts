// Hand-built TIFF 6.0 and BigTIFF files: uncompressed 8-bit RGB, one strip per page, image directory
// before the pixels, either byte order. sharp (libtiff) only writes the machine's byte order and puts the
// directory after the pixels; these let tests cover big-endian files, BigTIFF and directories that
// survive truncation.

export interface TiffPage {
  width: number;
  height: number;
  /** width × height × 3 bytes, RGB interleaved. */
  rgb: Uint8Array;
}

export interface TiffOptions {
  byteOrder: 'II' | 'MM';
  bigTiff?: boolean;
  /** Field type used for ImageWidth/ImageLength: SHORT (3), LONG (4) or LONG8 (16, BigTIFF only). */
  dimensionType?: 3 | 4 | 16;
}

const TYPE_SIZE: Record<number, number> = { 3: 2, 4: 4, 16: 8 };

export function tiffFile(pages: TiffPage[], options: TiffOptions): Buffer {
  const little = options.byteOrder === 'II';
  const big = options.bigTiff ?? false;
  const headerLength = big ? 16 : 8;
  const entrySize = big ? 20 : 12;
  const countSize = big ? 8 : 2;
  const nextSize = big ? 8 : 4;
  const entryCount = 10;
  const ifdLength = countSize + entryCount * entrySize + nextSize;
  const bitsPerSampleLength = 6; // three SHORTs, stored outside the entry in classic TIFF

  // Layout: header, then per page: IFD, BitsPerSample array, pixels.
  const offsets: Array<{ ifd: number; bits: number; pixels: number }> = [];
  let cursor = headerLength;
  for (const page of pages) {
    const ifd = cursor;
    const bits = ifd + ifdLength;
    const pixels = bits + bitsPerSampleLength;
    offsets.push({ ifd, bits, pixels });
    cursor = pixels + page.rgb.length;
    if (cursor % 2 === 1) cursor++; // TIFF 6.0: directories start on a word boundary
  }
  const out = Buffer.alloc(cursor);
  const u16 = (v: number, at: number) => (little ? out.writeUInt16LE(v, at) : out.writeUInt16BE(v, at));
  const u32 = (v: number, at: number) => (little ? out.writeUInt32LE(v, at) : out.writeUInt32BE(v, at));
  const u64 = (v: number, at: number) => (little ? out.writeBigUInt64LE(BigInt(v), at) : out.writeBigUInt64BE(BigInt(v), at));
  const offsetField = (v: number, at: number) => (big ? u64(v, at) : u32(v, at));

  out.write(options.byteOrder, 0, 'latin1');
  if (big) {
    u16(43, 2);
    u16(8, 4);
    u16(0, 6);
    u64(offsets[0]?.ifd ?? 0, 8);
  } else {
    u16(42, 2);
    u32(offsets[0]?.ifd ?? 0, 4);
  }

  pages.forEach((page, index) => {
    const at = offsets[index];
    if (!at) return;
    const dimensionType = options.dimensionType ?? 3;
    // Entries in ascending tag order (TIFF 6.0 §2).
    const entries: Array<[tag: number, type: number, count: number, value: number]> = [
      [256, dimensionType, 1, page.width],
      [257, dimensionType, 1, page.height],
      [258, 3, 3, at.bits], // BitsPerSample 8,8,8
      [259, 3, 1, 1], // Compression: none
      [262, 3, 1, 2], // PhotometricInterpretation: RGB
      [273, big ? 16 : 4, 1, at.pixels], // StripOffsets
      [277, 3, 1, 3], // SamplesPerPixel
      [278, 4, 1, page.height], // RowsPerStrip
      [279, 4, 1, page.rgb.length], // StripByteCounts
      [284, 3, 1, 1], // PlanarConfiguration: chunky
    ];
    if (big) {
      u64(entries.length, at.ifd);
    } else {
      u16(entries.length, at.ifd);
    }
    entries.forEach(([tag, type, count, value], i) => {
      const entry = at.ifd + countSize + i * entrySize;
      u16(tag, entry);
      u16(type, entry + 2);
      if (big) u64(count, entry + 4);
      else u32(count, entry + 4);
      const field = entry + (big ? 12 : 8);
      const inline = (TYPE_SIZE[type] ?? 4) * count <= (big ? 8 : 4);
      if (tag === 258 && big) {
        // Three SHORTs fit in BigTIFF's 8-byte value field.
        u16(8, field);
        u16(8, field + 2);
        u16(8, field + 4);
      } else if (!inline) {
        offsetField(value, field);
      } else if (type === 3) {
        u16(value, field);
      } else if (type === 4) {
        u32(value, field);
      } else {
        u64(value, field);
      }
    });
    const next = offsets[index + 1]?.ifd ?? 0;
    offsetField(next, at.ifd + countSize + entries.length * entrySize);
    for (let s = 0; s < 3; s++) u16(8, at.bits + 2 * s);
    out.set(page.rgb, at.pixels);
  });
  return out;
}

/** width × height RGB filled with one colour, or with a deterministic gradient when no colour is given. */
export function rgbPixels(width: number, height: number, colour?: [number, number, number]): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    out[3 * i] = colour ? colour[0] : (i * 7) & 0xff;
    out[3 * i + 1] = colour ? colour[1] : (i * 13) & 0xff;
    out[3 * i + 2] = colour ? colour[2] : (i * 29) & 0xff;
  }
  return out;
}

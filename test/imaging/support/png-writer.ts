import { once } from 'node:events';
import { createDeflate, crc32, deflateSync } from 'node:zlib';

// PNG files assembled chunk by chunk (ISO/IEC 15948 §5), for headers that no encoder would write.

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** length, type, data, CRC over type + data (§5.3). */
export function chunk(type: string, data: Uint8Array, crcOverride?: number): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crcOverride ?? crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

export function ihdr(width: number, height: number, bitDepth = 8, colourType = 0): Buffer {
  const data = Buffer.alloc(13);
  data.writeUInt32BE(width, 0);
  data.writeUInt32BE(height, 4);
  data[8] = bitDepth;
  data[9] = colourType;
  return data; // compression, filter, interlace: 0
}

/**
 * A decompression bomb: a valid header for width × height 8-bit greyscale and a small IDAT holding a
 * zlib stream of zeros (only the first rows' worth). The file is a few kilobytes; decoding it would
 * need width × height bytes.
 */
export function pngBomb(width: number, height: number): Buffer {
  const zeros = deflateSync(Buffer.alloc(1 << 20), { level: 9 });
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr(width, height)), chunk('IDAT', zeros), chunk('IEND', new Uint8Array(0))]);
}

/**
 * A bomb that is also a complete, valid PNG: every row of width × height 8-bit greyscale is present
 * (all zeros, so it compresses about 1000:1). Decoding it really would allocate width × height × 3
 * bytes of RGB. The zlib stream is produced in 1 MiB steps so the test itself never holds the pixels.
 */
export async function completePngBomb(width: number, height: number): Promise<Buffer> {
  const deflate = createDeflate({ level: 9 });
  const compressed: Buffer[] = [];
  deflate.on('data', (part: Buffer) => compressed.push(part));
  const step = Buffer.alloc(1 << 20);
  let remaining = (width + 1) * height; // a filter-type byte (0, None) before each row
  while (remaining > 0) {
    const part = step.subarray(0, Math.min(step.length, remaining));
    remaining -= part.length;
    if (!deflate.write(part)) await once(deflate, 'drain');
  }
  deflate.end();
  await once(deflate, 'end');
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr(width, height)), chunk('IDAT', Buffer.concat(compressed)), chunk('IEND', new Uint8Array(0))]);
}

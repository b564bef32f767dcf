/**
 * TEST INFRASTRUCTURE — Apple's LZ4 framing (Compression.framework's COMPRESSION_LZ4, what
 * Tart's `NSData.compressed(using: .lz4)` and `OutputFilter(.decompress, using: .lz4)` produce
 * and read for `application/vnd.cirruslabs.tart.disk.v2` layers). It is NOT the standard LZ4
 * frame (magic 0x184D2204): a stream is a sequence of blocks, each a 4-byte ASCII magic then
 * little-endian uint32 fields:
 *   `bv41` decodedSize encodedSize <encodedSize bytes of an LZ4 block>
 *   `bv4-` size <size raw bytes>
 *   `bv4$`                                  (end of stream)
 * The encoder here writes raw (`bv4-`) blocks only — valid input for Apple's decoder, no
 * compression needed for tests. The decoder reads both kinds (LZ4 block sequences with matches
 * reaching back up to 64 KiB, into earlier blocks too), so it also takes real Tart layers.
 */
import { closeSync, openSync, readSync } from 'node:fs';

export const MAGIC_COMPRESSED = 'bv41';
export const MAGIC_RAW = 'bv4-';
export const MAGIC_END = 'bv4$';
/** Bytes of input per raw block written by the encoder (the double's choice; any size decodes). */
export const RAW_BLOCK_BYTES = 64 * 1024;
const HISTORY_BYTES = 64 * 1024;

/** Size of `length` input bytes framed as raw blocks of `blockBytes`. */
export function framedSize(length: number, blockBytes = RAW_BLOCK_BYTES): number {
  return length + 8 * Math.ceil(length / blockBytes) + 4;
}

function header(magic: string, size: number): Buffer {
  const h = Buffer.alloc(8);
  h.write(magic, 0, 'latin1');
  h.writeUInt32LE(size, 4);
  return h;
}

/** Frames a buffer (raw blocks + end marker). */
export function frameBuffer(data: Buffer, blockBytes = RAW_BLOCK_BYTES): Buffer {
  const parts: Buffer[] = [];
  for (let pos = 0; pos < data.length; pos += blockBytes) {
    const piece = data.subarray(pos, Math.min(data.length, pos + blockBytes));
    parts.push(header(MAGIC_RAW, piece.length), piece);
  }
  parts.push(Buffer.from(MAGIC_END, 'latin1'));
  return Buffer.concat(parts);
}

/**
 * The framing of bytes [offset, offset+length) of `file`, in pieces (headers and data),
 * read as they are asked for. `onInput` sees every input byte once (for the uncompressed digest).
 */
export function* frameFileRange(file: string, offset: number, length: number, onInput?: (data: Buffer) => void, blockBytes = RAW_BLOCK_BYTES): Generator<Buffer> {
  const fd = openSync(file, 'r');
  try {
    for (let pos = 0; pos < length; ) {
      const n = Math.min(blockBytes, length - pos);
      const buf = Buffer.alloc(n);
      let got = 0;
      while (got < n) {
        const r = readSync(fd, buf, got, n - got, offset + pos + got);
        if (r === 0) throw new Error(`${file} ended at byte ${offset + pos + got}, expected ${offset + length}`);
        got += r;
      }
      onInput?.(buf);
      yield header(MAGIC_RAW, n);
      yield buf;
      pos += n;
    }
    yield Buffer.from(MAGIC_END, 'latin1');
  } finally {
    closeSync(fd);
  }
}

export class Lz4FramingError extends Error {}

/** Decodes one LZ4 block (sequences of literals and matches) given the preceding output. */
function decodeBlock(src: Buffer, decodedSize: number, history: Buffer): Buffer {
  const out = Buffer.alloc(decodedSize);
  let ip = 0;
  let op = 0;
  const byteAt = (back: number): number => (back <= op ? out[op - back]! : history[history.length - (back - op)]!);
  while (ip < src.length) {
    const token = src[ip++]!;
    let lit = token >> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= src.length) throw new Lz4FramingError('truncated literal length');
        b = src[ip++]!;
        lit += b;
      } while (b === 255);
    }
    if (ip + lit > src.length || op + lit > decodedSize) throw new Lz4FramingError('literals run past the block');
    src.copy(out, op, ip, ip + lit);
    ip += lit;
    op += lit;
    if (ip >= src.length) break; // last sequence: literals only
    if (ip + 2 > src.length) throw new Lz4FramingError('truncated match offset');
    const offset = src.readUInt16LE(ip);
    ip += 2;
    if (offset === 0 || offset > op + history.length) throw new Lz4FramingError(`match offset ${offset} reaches before the data`);
    let len = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (ip >= src.length) throw new Lz4FramingError('truncated match length');
        b = src[ip++]!;
        len += b;
      } while (b === 255);
    }
    if (op + len > decodedSize) throw new Lz4FramingError('match runs past the block');
    for (let i = 0; i < len; i++, op++) out[op] = byteAt(offset);
  }
  if (op !== decodedSize) throw new Lz4FramingError(`block decoded to ${op} bytes, header says ${decodedSize}`);
  return out;
}

/** Incremental decoder: `write` returns the bytes decoded so far; `end` checks the end marker came. */
export class AppleLz4Decoder {
  private pending: Buffer = Buffer.alloc(0);
  private history: Buffer = Buffer.alloc(0);
  private ended = false;

  write(data: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    const out: Buffer[] = [];
    for (;;) {
      if (this.ended) {
        if (this.pending.length > 0) throw new Lz4FramingError(`${this.pending.length} bytes after the end marker`);
        break;
      }
      if (this.pending.length < 4) break;
      const magic = this.pending.toString('latin1', 0, 4);
      let block: Buffer;
      if (magic === MAGIC_END) {
        this.ended = true;
        this.pending = this.pending.subarray(4);
        continue;
      } else if (magic === MAGIC_RAW) {
        if (this.pending.length < 8) break;
        const n = this.pending.readUInt32LE(4);
        if (this.pending.length < 8 + n) break;
        block = Buffer.from(this.pending.subarray(8, 8 + n));
        this.pending = this.pending.subarray(8 + n);
      } else if (magic === MAGIC_COMPRESSED) {
        if (this.pending.length < 12) break;
        const decoded = this.pending.readUInt32LE(4);
        const encoded = this.pending.readUInt32LE(8);
        if (this.pending.length < 12 + encoded) break;
        block = decodeBlock(this.pending.subarray(12, 12 + encoded), decoded, this.history);
        this.pending = this.pending.subarray(12 + encoded);
      } else {
        throw new Lz4FramingError(`unknown block magic ${JSON.stringify(magic)}`);
      }
      out.push(block);
      this.history = Buffer.concat([this.history, block]).subarray(-HISTORY_BYTES);
    }
    return out;
  }

  end(): void {
    if (!this.ended) throw new Lz4FramingError('the stream ended without the bv4$ end marker');
  }
}

/** Decodes a whole framed buffer. */
export function unframe(data: Buffer): Buffer {
  const d = new AppleLz4Decoder();
  const out = d.write(data);
  d.end();
  return Buffer.concat(out);
}

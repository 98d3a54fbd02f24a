/**
 * The Internet checksum (RFC 1071) in WebAssembly SIMD, for the udp sender's TCP segmentation:
 * with offloads every byte a pod sends through the udp backend is summed once, and in plain
 * JavaScript that was the loop's largest cost (about a fifth of a core at 4.5 Gbit/s).
 *
 * The module is built here from its opcodes (about 200 bytes, no binary blob in the tree) and
 * sums bytes of an imported memory, which is the sender's arena itself: nothing is copied. It
 * reads 16 bytes per step as eight little-endian 16-bit words, adds them pairwise into four
 * 32-bit lanes (`i32x4.extadd_pairwise_i16x8_u`), folds, and swaps the bytes at the end, which
 * is RFC 1071's byte-order trick: the result equals the big-endian word sum. Unaligned loads
 * are fine in WebAssembly, so any start address works; the words pair up from `off`.
 *
 * Like forwarder.ts, this runs from its source text inside the loop's Worker, so the functions
 * here use only globals and their parameters.
 *
 * @module
 */

/**
 * The module's bytes. One export, `c(off, len) -> sum`: the RFC 1071 sum of `len` bytes at
 * `off` of the imported memory `e.m`, folded to 16 bits, in network order, not inverted.
 * `len` must stay under 512 KiB (each 32-bit lane takes at most 32 Ki steps of 131 070).
 */
export function checksumWasmBytes(): Uint8Array<ArrayBuffer> {
  /** Unsigned LEB128. */
  const u = (n: number): number[] => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n !== 0) b |= 0x80;
      out.push(b);
    } while (n !== 0);
    return out;
  };
  /** Signed LEB128 (i32.const). */
  const s = (n: number): number[] => {
    const out: number[] = [];
    for (;;) {
      const b = n & 0x7f;
      n >>= 7;
      if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
        out.push(b);
        return out;
      }
      out.push(b | 0x80);
    }
  };
  const section = (id: number, body: number[]) => [id, ...u(body.length), ...body];
  const name = (t: string) => [t.length, ...[...t].map((ch) => ch.charCodeAt(0))];
  // Opcodes (WebAssembly core 2.0).
  const BLOCK = 0x02, LOOP = 0x03, IF = 0x04, VOID = 0x40, END = 0x0b, BR = 0x0c, BR_IF = 0x0d;
  const GET = 0x20, SET = 0x21, CONST = 0x41, LOAD8_U = 0x2d, LOAD16_U = 0x2f;
  const LT_U = 0x49, GT_U = 0x4b, GE_U = 0x4f, ADD = 0x6a, AND = 0x71, OR = 0x72, SHL = 0x74, SHR_U = 0x76;
  const simd = (op: number) => [0xfd, ...u(op)];
  const V128_LOAD = simd(0x00), V128_CONST = simd(0x0c), V128_AND = simd(0x4e);
  const EXTRACT = simd(0x1b), EXTADD_U16 = simd(0x7f), I32X4_SHR_U = simd(0xad), I32X4_ADD = simd(0xae);
  const mem = (align: number) => [align, 0]; // memarg: alignment hint, offset 0
  // Locals: 0 off, 1 len (parameters); 2 acc (v128); 3 end, 4 sum (i32).
  const OFF = 0, LEN = 1, ACC = 2, END_AT = 3, SUM = 4;
  const fold = [GET, SUM, CONST, ...s(0xffff), AND, GET, SUM, CONST, 16, SHR_U, ADD, SET, SUM];
  const lane = (i: number) => [GET, ACC, ...EXTRACT, i];
  // deno-fmt-ignore
  const body = [
    2, 1, 0x7b, 2, 0x7f, // locals: 1 v128, 2 i32
    // end = off + (len & ~15)
    GET, OFF, GET, LEN, CONST, ...s(-16), AND, ADD, SET, END_AT,
    BLOCK, VOID, LOOP, VOID,
    GET, OFF, GET, END_AT, GE_U, BR_IF, 1,
    GET, ACC, GET, OFF, ...V128_LOAD, ...mem(0), ...EXTADD_U16, ...I32X4_ADD, SET, ACC,
    GET, OFF, CONST, 16, ADD, SET, OFF,
    BR, 0, END, END,
    // acc = (acc & 0xffff) + (acc >> 16), lane by lane; sum = the four lanes
    GET, ACC, ...V128_CONST, ...Array.from({ length: 4 }, () => [0xff, 0xff, 0, 0]).flat(), ...V128_AND,
    GET, ACC, CONST, 16, ...I32X4_SHR_U, ...I32X4_ADD, SET, ACC,
    ...lane(0), ...lane(1), ADD, ...lane(2), ADD, ...lane(3), ADD, SET, SUM,
    // the last len & 15 bytes: 16-bit words, then an odd byte as the low half of one
    GET, END_AT, GET, LEN, CONST, 15, AND, ADD, SET, END_AT,
    BLOCK, VOID, LOOP, VOID,
    GET, OFF, CONST, 2, ADD, GET, END_AT, GT_U, BR_IF, 1,
    GET, SUM, GET, OFF, LOAD16_U, ...mem(0), ADD, SET, SUM,
    GET, OFF, CONST, 2, ADD, SET, OFF,
    BR, 0, END, END,
    GET, OFF, GET, END_AT, LT_U, IF, VOID,
    GET, SUM, GET, OFF, LOAD8_U, ...mem(0), ADD, SET, SUM,
    END,
    ...fold, ...fold,
    // to network order: ((sum & 0xff) << 8) | (sum >> 8)
    GET, SUM, CONST, ...s(0xff), AND, CONST, 8, SHL, GET, SUM, CONST, 8, SHR_U, OR,
    END,
  ];
  const MAGIC_VERSION = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]; // "\0asm", version 1
  return new Uint8Array([
    ...MAGIC_VERSION,
    ...section(1, [1, 0x60, 2, 0x7f, 0x7f, 1, 0x7f]), // type 0: (i32, i32) -> i32
    ...section(2, [1, ...name("e"), ...name("m"), 0x02, 0x00, 1]), // import memory e.m, at least 1 page
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(7, [1, ...name("c"), 0x00, 0]), // export it as "c"
    ...section(10, [1, ...u(body.length), ...body]),
  ]);
}

/**
 * The SIMD checksum over `memory`, or undefined where this WebAssembly has no SIMD (the caller
 * then sums in JavaScript). `(off, len) => sum` as {@linkcode checksumWasmBytes} describes.
 */
export function wasmChecksum(memory: WebAssembly.Memory): ((off: number, len: number) => number) | undefined {
  const bytes = checksumWasmBytes();
  if (typeof WebAssembly === "undefined" || !WebAssembly.validate(bytes)) return undefined;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { e: { m: memory } });
  return instance.exports.c as (off: number, len: number) => number;
}

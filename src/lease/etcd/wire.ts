/**
 * The JSON shapes of etcd's v3 gateway (grpc-gateway over `etcdserverpb`), and their conversion to
 * the client's types. On the wire, `bytes` fields are base64 and int64 fields are JSON strings; the
 * gateway omits every field that holds its zero value (`0`, `false`, `""`, empty list), so every
 * decoder here treats a missing field as zero.
 *
 * @module
 */

/** One stored key, as the client returns it. */
export interface KeyValue {
  key: string;
  value: string;
  createRevision: bigint;
  modRevision: bigint;
  /** Number of puts since the key was created; 0n for a deleted key in a watch event. */
  version: bigint;
  /** The etcd lease the key is attached to; 0n when none. */
  lease: bigint;
}

/** `mvccpb.KeyValue` as JSON. */
export interface WireKeyValue {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

/** `etcdserverpb.ResponseHeader` as JSON. */
export interface WireHeader {
  revision?: string;
}

import { EtcdError } from "./errors.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Base64 of the UTF-8 bytes of `s`. */
export function b64(s: string): string {
  return bytesToB64(encoder.encode(s));
}

/** Base64 of raw bytes. */
export function bytesToB64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** The UTF-8 string in base64 `s`; an absent field is the empty string. */
export function unb64(s: string | undefined): string {
  if (s === undefined || s === "") return "";
  const bin = atob(s);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return decoder.decode(bytes);
}

/**
 * The base64 `range_end` that makes a range over `key` cover every key starting with it: the key's
 * bytes with the last byte below 0xff incremented and the rest dropped (etcd's `GetPrefixRangeEnd`).
 * A key of only 0xff bytes, or the empty key, ranges to the end of the keyspace (`"\0"`).
 */
export function prefixRangeEnd(key: string): string {
  const bytes = encoder.encode(key);
  for (let i = bytes.length - 1; i >= 0; i--) {
    const b = bytes[i]!;
    if (b < 0xff) {
      const end = bytes.slice(0, i + 1);
      end[i] = b + 1;
      return bytesToB64(end);
    }
  }
  return bytesToB64(new Uint8Array([0]));
}

/** An int64 JSON string (or absent) as a bigint. */
export function int64(s: string | number | undefined): bigint {
  return s === undefined || s === "" ? 0n : BigInt(s);
}

/** The header revision of a response; 0n when absent. */
export function headerRevision(res: { header?: WireHeader }): bigint {
  return int64(res.header?.revision);
}

/** A `mvccpb.KeyValue` as a {@linkcode KeyValue}. */
export function decodeKeyValue(kv: WireKeyValue): KeyValue {
  return {
    key: unb64(kv.key),
    value: unb64(kv.value),
    createRevision: int64(kv.create_revision),
    modRevision: int64(kv.mod_revision),
    version: int64(kv.version),
    lease: int64(kv.lease),
  };
}

/** The error object the gateway sends: unary responses use `code`, stream errors `grpc_code`. */
export interface WireError {
  error?: string | { grpc_code?: number; message?: string };
  message?: string;
  code?: number;
}

/** The gRPC code and message of a gateway error body; both undefined when it is not one. */
export function parseWireError(body: unknown): { code: number | undefined; message: string | undefined } {
  if (typeof body !== "object" || body === null) return { code: undefined, message: undefined };
  const e = body as WireError;
  if (typeof e.error === "object" && e.error !== null) {
    return { code: e.error.grpc_code, message: e.error.message };
  }
  return {
    code: typeof e.code === "number" ? e.code : undefined,
    message: e.message ?? (typeof e.error === "string" ? e.error : undefined),
  };
}

/**
 * Splits a byte stream of newline-delimited JSON objects (the gateway's streaming format) into
 * parsed objects. Keeps the unfinished tail between chunks.
 */
export class JsonLines {
  #decoder = new TextDecoder();
  #buf = "";

  /** The complete objects in `chunk`, plus what earlier chunks left unfinished. */
  push(chunk: Uint8Array): unknown[] {
    this.#buf += this.#decoder.decode(chunk, { stream: true });
    const out: unknown[] = [];
    let nl: number;
    while ((nl = this.#buf.indexOf("\n")) >= 0) {
      const line = this.#buf.slice(0, nl).trim();
      this.#buf = this.#buf.slice(nl + 1);
      if (line !== "") out.push(JSON.parse(line));
    }
    return out;
  }
}

/** Throws the {@linkcode EtcdError} of a failed gateway response. */
export async function throwForStatus(res: Response, what: string): Promise<never> {
  throwForBody(res.status, await res.text(), what);
}

/** Throws the {@linkcode EtcdError} of a failed gateway response body. */
export function throwForBody(status: number, text: string, what: string): never {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const { code, message } = parseWireError(body);
  const detail = message ??
    `HTTP ${status}${text.trim() ? ` ${JSON.stringify(text.trim().slice(0, 80))}` : ""}`;
  throw new EtcdError(`${what}: ${detail}`, { code });
}

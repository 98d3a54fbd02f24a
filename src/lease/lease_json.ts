/**
 * The lease value as stored under `<prefix>/subnets/<key>`, byte-compatible with upstream:
 * `{"PublicIP":"…","PublicIPv6":null|"…","BackendType":"…","BackendData":{…},"BackendV6Data":{…}}`.
 *
 * Field order is fixed; `PublicIP` and `PublicIPv6` are always present; the backend fields are
 * omitted when empty; the backend data is embedded JSON, not a string. Other flannel versions
 * read these values, so this codec is pinned by literal-string tests.
 *
 * @module
 */
import { IP4, IP6 } from "../ip/mod.ts";
import { getField } from "../config/case_insensitive.ts";
import type { LeaseAttrs } from "./types.ts";

/** A lease value that cannot be decoded; the message names the field and the value. */
export class LeaseValueError extends SyntaxError {
  override name = "LeaseValueError";
}

/** Encodes lease attributes as upstream writes them. */
export function encodeLeaseAttrs(attrs: LeaseAttrs): string {
  let out = `{"PublicIP":${JSON.stringify(attrs.publicIP.toString())}`;
  out += `,"PublicIPv6":${attrs.publicIPv6 ? JSON.stringify(attrs.publicIPv6.toString()) : "null"}`;
  if (attrs.backendType) out += `,"BackendType":${JSON.stringify(attrs.backendType)}`;
  if (attrs.backendData !== undefined && attrs.backendData !== "") {
    out += `,"BackendData":${attrs.backendData}`;
  }
  if (attrs.backendV6Data !== undefined && attrs.backendV6Data !== "") {
    out += `,"BackendV6Data":${attrs.backendV6Data}`;
  }
  return out + "}";
}

/**
 * Decodes a lease value. Field names match case-insensitively (as Go's encoding/json does);
 * unknown fields are ignored; IP fields are parsed strictly.
 *
 * @throws {LeaseValueError} when the text is not a JSON object or a field has a bad value.
 */
export function decodeLeaseAttrs(text: string): LeaseAttrs {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new LeaseValueError(`Lease value is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new LeaseValueError(`Lease value must be a JSON object, got ${preview(text)}`);
  }
  const rec = obj as Record<string, unknown>;
  const attrs: LeaseAttrs = { publicIP: IP4.fromNumber(0) };

  const pub = getField(rec, "PublicIP");
  if (pub !== undefined && pub !== null) {
    if (typeof pub !== "string") throw fieldError("PublicIP", pub, "an IPv4 address string");
    try {
      attrs.publicIP = IP4.parse(pub);
    } catch (e) {
      throw fieldError("PublicIP", pub, "an IPv4 address", e);
    }
  }
  const pub6 = getField(rec, "PublicIPv6");
  if (pub6 !== undefined && pub6 !== null) {
    if (typeof pub6 !== "string") throw fieldError("PublicIPv6", pub6, "an IPv6 address string or null");
    try {
      attrs.publicIPv6 = IP6.parse(pub6);
    } catch (e) {
      throw fieldError("PublicIPv6", pub6, "an IPv6 address or null", e);
    }
  }
  const type = getField(rec, "BackendType");
  if (type !== undefined && type !== null) {
    if (typeof type !== "string") throw fieldError("BackendType", type, "a string");
    if (type !== "") attrs.backendType = type;
  }
  const data = getField(rec, "BackendData");
  if (data !== undefined && data !== null) attrs.backendData = JSON.stringify(data);
  const data6 = getField(rec, "BackendV6Data");
  if (data6 !== undefined && data6 !== null) attrs.backendV6Data = JSON.stringify(data6);
  return attrs;
}

function fieldError(field: string, value: unknown, want: string, cause?: unknown): LeaseValueError {
  return new LeaseValueError(
    `Lease field "${field}" is ${preview(JSON.stringify(value) ?? String(value))}, must be ${want}`,
    cause === undefined ? undefined : { cause },
  );
}

function preview(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** True when two attribute sets encode to the same value. */
export function sameAttrs(a: LeaseAttrs, b: LeaseAttrs): boolean {
  return encodeLeaseAttrs(a) === encodeLeaseAttrs(b);
}

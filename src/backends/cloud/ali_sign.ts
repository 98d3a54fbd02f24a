/**
 * Alibaba Cloud's RPC-style request signature ("signature method V2": `SignatureMethod=HMAC-SHA1`,
 * `SignatureVersion=1.0`), as its OpenAPI documentation describes it:
 *
 * 1. Percent-encode every parameter name and value as UTF-8 bytes, leaving only `A–Z a–z 0–9 - _ . ~`
 *    as they are and writing every other byte as `%XY` (upper-case hex). So a space is `%20` (not
 *    `+`), `*` is `%2A`, `~` stays `~`; `encodeURIComponent` differs on `! ' ( ) *`.
 * 2. Sort the parameters (all but `Signature`) by name and join them as `name=value` with `&`: the
 *    canonicalized query string.
 * 3. StringToSign = `METHOD&%2F&` + percentEncode(canonicalized query), so the query is encoded twice
 *    (`:` in the Timestamp ends up as `%253A`).
 * 4. Signature = Base64(HMAC-SHA1(key = AccessKeySecret + `&`, StringToSign)). The documentation's
 *    formula names only the secret; its worked examples (and every SDK) use the secret with `&`
 *    appended, which is what the server checks.
 *
 * Pure functions apart from WebCrypto; no I/O.
 *
 * @module
 */
import { hmac } from "./route_backend.ts";

const UNRESERVED = /[A-Za-z0-9\-_.~]/;

/**
 * Percent-encodes `s` by Alibaba's rules (RFC 3986 unreserved characters only).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { aliPercentEncode } from "./ali_sign.ts";
 * assert.equal(aliPercentEncode("a b*c~"), "a%20b%2Ac~");
 * ```
 */
export function aliPercentEncode(s: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(b);
    out += b < 0x80 && UNRESERVED.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The canonicalized query string: encoded `name=value` pairs sorted by name, joined with `&`. */
export function aliCanonicalQuery(params: Record<string, string>): string {
  return Object.keys(params)
    .filter((k) => k !== "Signature")
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((k) => `${aliPercentEncode(k)}=${aliPercentEncode(params[k]!)}`)
    .join("&");
}

/** `METHOD&%2F&<percent-encoded canonical query>`. */
export function aliStringToSign(method: string, params: Record<string, string>): string {
  return `${method}&${aliPercentEncode("/")}&${aliPercentEncode(aliCanonicalQuery(params))}`;
}

/** The `Signature` value (Base64, not yet percent-encoded). */
export async function aliSignature(
  method: string,
  params: Record<string, string>,
  accessKeySecret: string,
): Promise<string> {
  const mac = await hmac("SHA-1", `${accessKeySecret}&`, aliStringToSign(method, params));
  return btoa(String.fromCharCode(...mac));
}

/** The query string to send: the canonical query plus `&Signature=<encoded signature>`. */
export async function aliSignedQuery(
  method: string,
  params: Record<string, string>,
  accessKeySecret: string,
): Promise<string> {
  const signature = await aliSignature(method, params, accessKeySecret);
  return `${aliCanonicalQuery(params)}&Signature=${aliPercentEncode(signature)}`;
}

/** The `Timestamp` parameter: ISO 8601 in UTC to the second, `2016-02-23T12:46:24Z`. */
export function aliTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

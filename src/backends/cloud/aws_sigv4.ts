/**
 * Talking to an AWS Query API (EC2's): AWS Signature Version 4, the form-encoded POST, and the
 * XML that comes back, errors included.
 *
 * The signature (`AWS4-HMAC-SHA256`) is a pure function of the request, the credentials, the
 * scope and the time: no I/O but WebCrypto, so it is checked against AWS's published example
 * vectors (tests/unit/cloud_aws_sigv4_test.ts).
 *
 * What is signed: the method, the path, the sorted query, the headers the caller gives plus
 * `host`, `x-amz-date` and (with temporary credentials) `x-amz-security-token`, and the SHA-256
 * of the body. The path is used as the URL parser leaves it (percent-encoded once): the EC2 Query
 * API only ever posts to `/`, so the double encoding some services want for other paths never
 * arises here.
 *
 * @module
 */
import { apiSignal, CloudApiError, type CloudContext, hex, hmac, sha256Hex } from "./route_backend.ts";

/** An access key, and the session token that comes with temporary (instance role) keys. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

/** Who the signature is for: `us-east-1` and `ec2`. */
export interface SigV4Scope {
  region: string;
  service: string;
}

/** A request to sign. `headers` are sent and signed; `host` comes from the URL unless given. */
export interface SigV4Request {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: string;
}

/** The signature and the intermediate strings (which the tests compare with AWS's). */
export interface SignedRequest {
  /** The headers to send: the caller's, `x-amz-date`, the token if any, and `authorization` (not `host`). */
  headers: Record<string, string>;
  canonicalRequest: string;
  stringToSign: string;
  signedHeaders: string;
  signature: string;
  authorization: string;
}

export const SIGV4_ALGORITHM = "AWS4-HMAC-SHA256";

/** `20150830T123600Z`: the `x-amz-date` form of a time. */
export function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/** RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - . _ ~`, in UTF-8, upper-case hex. */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The canonical query: each name and value decoded, re-encoded, sorted by name then value. */
export function canonicalQuery(search: string): string {
  const raw = search.startsWith("?") ? search.slice(1) : search;
  if (raw === "") return "";
  const dec = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const pairs = raw.split("&").filter((p) => p !== "").map((p) => {
    const eq = p.indexOf("=");
    const [k, v] = eq < 0 ? [p, ""] : [p.slice(0, eq), p.slice(eq + 1)];
    return [uriEncode(dec(k)), uriEncode(dec(v))] as const;
  });
  pairs.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** A header value as signed: trimmed, runs of whitespace made one space. */
export function canonicalHeaderValue(v: string): string {
  return v.trim().replace(/\s+/g, " ");
}

/** `20150830/us-east-1/ec2/aws4_request`. */
export function credentialScope(date: string, scope: SigV4Scope): string {
  return `${date}/${scope.region}/${scope.service}/aws4_request`;
}

/** The signing key: HMAC chain of `AWS4<secret>` over the date, region, service and `aws4_request`. */
export async function signingKey(
  secret: string,
  date: string,
  scope: SigV4Scope,
): Promise<Uint8Array> {
  const kDate = await hmac("SHA-256", `AWS4${secret}`, date);
  const kRegion = await hmac("SHA-256", kDate, scope.region);
  const kService = await hmac("SHA-256", kRegion, scope.service);
  return hmac("SHA-256", kService, "aws4_request");
}

/**
 * Signs `req` for `scope` at `date`.
 *
 * @example
 * ```ts
 * import { signV4 } from "./aws_sigv4.ts";
 * const s = await signV4(
 *   { method: "GET", url: new URL("https://example.amazonaws.com/") },
 *   { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
 *   { region: "us-east-1", service: "service" },
 *   new Date("2015-08-30T12:36:00Z"),
 * );
 * console.assert(s.signature === "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
 * ```
 */
export async function signV4(
  req: SigV4Request,
  creds: AwsCredentials,
  scope: SigV4Scope,
  date: Date,
): Promise<SignedRequest> {
  const stamp = amzDate(date);
  const day = stamp.slice(0, 8);
  const sent: Record<string, string> = { ...req.headers, "x-amz-date": stamp };
  if (creds.sessionToken) sent["x-amz-security-token"] = creds.sessionToken;
  const signed = new Map<string, string>();
  for (const [name, value] of Object.entries(sent)) {
    const n = name.toLowerCase();
    const v = canonicalHeaderValue(value);
    signed.set(n, signed.has(n) ? `${signed.get(n)},${v}` : v);
  }
  if (!signed.has("host")) signed.set("host", req.url.host);
  const names = [...signed.keys()].sort();
  const signedHeaders = names.join(";");
  const canonicalRequest = [
    req.method.toUpperCase(),
    req.url.pathname || "/",
    canonicalQuery(req.url.search),
    ...names.map((n) => `${n}:${signed.get(n)}`),
    "",
    signedHeaders,
    await sha256Hex(req.body ?? ""),
  ].join("\n");
  const stringToSign = [
    SIGV4_ALGORITHM,
    stamp,
    credentialScope(day, scope),
    await sha256Hex(canonicalRequest),
  ].join("\n");
  const key = await signingKey(creds.secretAccessKey, day, scope);
  const signature = hex(await hmac("SHA-256", key, stringToSign));
  const authorization = `${SIGV4_ALGORITHM} Credential=${creds.accessKeyId}/${
    credentialScope(day, scope)
  }, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(sent)) if (name.toLowerCase() !== "host") headers[name] = value;
  headers["authorization"] = authorization;
  return { headers, canonicalRequest, stringToSign, signedHeaders, signature, authorization };
}

// ---- a tolerant reader for the XML the Query APIs answer with -------------------------------

/** An XML element: local name (namespace prefix dropped), child elements, concatenated text. */
export interface XmlElement {
  name: string;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith("#x")) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith("#")) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? m;
  });
}

/**
 * Parses XML into a tree under a nameless root. Tolerant: attributes, comments, processing
 * instructions and DOCTYPE are skipped, CDATA is text, a stray close tag is ignored, and an
 * unclosed element ends with the input. Enough for EC2 answers, not a validating parser.
 *
 * @example
 * ```ts
 * import { parseXml, xmlText } from "./aws_sigv4.ts";
 * const doc = parseXml("<R><Code>A&amp;B</Code></R>");
 * console.assert(xmlText(doc.children[0], "Code") === "A&B");
 * ```
 */
export function parseXml(src: string): XmlElement {
  const root: XmlElement = { name: "", children: [], text: "" };
  const stack = [root];
  const skipTo = (end: string, from: number) => {
    const e = src.indexOf(end, from);
    return e < 0 ? src.length : e + end.length;
  };
  const local = (s: string) => s.split(/[\s/]/)[0]!.replace(/^.*:/, "");
  let i = 0;
  while (i < src.length) {
    const top = stack[stack.length - 1]!;
    const lt = src.indexOf("<", i);
    top.text += unescapeXml(src.slice(i, lt < 0 ? src.length : lt));
    if (lt < 0) break;
    if (src.startsWith("<!--", lt)) {
      i = skipTo("-->", lt + 4);
    } else if (src.startsWith("<![CDATA[", lt)) {
      i = skipTo("]]>", lt + 9);
      top.text += src.slice(lt + 9, Math.max(lt + 9, i - 3));
    } else if (src[lt + 1] === "?" || src[lt + 1] === "!") {
      i = skipTo(">", lt);
    } else {
      let j = lt + 1;
      for (let quote = ""; j < src.length; j++) {
        const c = src[j];
        if (quote) quote = c === quote ? "" : quote;
        else if (c === '"' || c === "'") quote = c;
        else if (c === ">") break;
      }
      const tag = src.slice(lt + 1, j).trim();
      i = j + 1;
      if (tag.startsWith("/")) {
        // The innermost open element of that name (findLastIndex is ES2023; the npm build targets 2022).
        const name = local(tag.slice(1));
        let at = stack.length - 1;
        while (at >= 0 && stack[at]!.name !== name) at--;
        if (at > 0) stack.length = at;
      } else {
        const el: XmlElement = { name: local(tag), children: [], text: "" };
        top.children.push(el);
        if (!tag.endsWith("/")) stack.push(el);
      }
    }
  }
  return root;
}

/** The first child element called `name`. */
export function xmlChild(e: XmlElement | undefined, name: string): XmlElement | undefined {
  return e?.children.find((c) => c.name === name);
}

/** The trimmed text of the first child called `name`, `""` when absent. */
export function xmlText(e: XmlElement | undefined, name: string): string {
  return xmlChild(e, name)?.text.trim() ?? "";
}

/** The `<item>`s of the list child `name` (EC2 lists are `<xSet><item>…</item></xSet>`). */
export function xmlItems(e: XmlElement | undefined, name: string): XmlElement[] {
  return xmlChild(e, name)?.children.filter((c) => c.name === "item") ?? [];
}

// ---- the Query API client -------------------------------------------------------------------

/** Codes a later attempt can cure: throttling and AWS's own failures (HTTP 5xx is retried too). */
const RETRYABLE = new Set([
  "RequestLimitExceeded",
  "Throttling",
  "ThrottlingException",
  "InternalError",
  "InternalFailure",
  "ServiceUnavailable",
  "Unavailable",
]);

/** What a Query client talks to: `ec2`, `2016-11-15`, the region's endpoint. */
export interface QueryTarget {
  service: string;
  version: string;
  region: string;
  endpoint: URL;
}

/**
 * Calls the actions of one AWS Query API with SigV4-signed form POSTs. Errors are
 * {@linkcode CloudApiError}s with AWS's code (`UnauthorizedOperation`), retryable for
 * throttling, AWS's internal errors and unreachable endpoints.
 */
export class AwsQueryClient {
  constructor(
    readonly ctx: Pick<CloudContext, "fetch" | "clock" | "signal">,
    readonly target: QueryTarget,
    readonly creds: { get(): Promise<AwsCredentials> },
  ) {}

  /** Runs `action`; the answer's root element (`<CreateRouteResponse>`). */
  async call(action: string, params: Record<string, string>, signal?: AbortSignal): Promise<XmlElement> {
    const { service, version, region, endpoint } = this.target;
    const all = { Action: action, Version: version, ...params };
    const body = Object.entries(all).map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`).join("&");
    const signed = await signV4(
      {
        method: "POST",
        url: endpoint,
        headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
        body,
      },
      await this.creds.get(),
      { region, service },
      new Date(this.ctx.clock.now()),
    );
    let res: Response;
    let text: string;
    try {
      res = await this.ctx.fetch(endpoint, {
        method: "POST",
        headers: signed.headers,
        body,
        signal: apiSignal(signal ?? this.ctx.signal),
      });
      text = await res.text();
    } catch (e) {
      throw new CloudApiError("AWS", action, "NetworkError", `${endpoint.origin}: ${(e as Error).message}`);
    }
    const doc = parseXml(text).children[0];
    if (res.ok && doc) return doc;
    // <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>
    const err = xmlChild(xmlChild(doc, "Errors"), "Error");
    const code = xmlText(err, "Code") || `HTTP ${res.status}`;
    const id = xmlText(doc, "RequestID") || xmlText(doc, "RequestId");
    const message = (err ? xmlText(err, "Message") : text.slice(0, 200)).replace(/\s+/g, " ");
    const hint = code === "UnauthorizedOperation"
      ? ` (grant ${service}:${action} to these credentials)`
      : code === "AuthFailure"
      ? " (check the access key and secret, or the instance role)"
      : "";
    throw new CloudApiError(
      "AWS",
      action,
      code,
      `${message}${hint}${id ? ` (RequestID ${id})` : ""}`,
      res.status >= 500 || RETRYABLE.has(code),
    );
  }
}

/**
 * The network configuration: net-conf.json in kube mode, `<prefix>/config` in etcd.
 *
 * {@linkcode parseNetworkConfig} does what upstream's parser does and nothing more (kube mode stops
 * there); {@linkcode checkNetworkConfig} adds upstream's validation and derived defaults (etcd mode
 * does both). Error texts keep upstream's wording as the reason, after the field and its value:
 * `Cannot parse net-conf.json: "SubnetLen" is 33: SubnetLen must be less than /31`.
 *
 * @module
 */

import { IP4, IP4Net, IP6, IP6Net } from "../ip/mod.ts";
import { ip4ParseReason } from "../ip/ip4.ts";
import { ip4NetParseReason, ip6NetParseReason } from "../ip/cidr.ts";
import { escapeControls } from "../ip/text.ts";
import { getField } from "./case_insensitive.ts";

/** A parsed network configuration. Absent optional fields are omitted, never `undefined`. */
export interface NetworkConfig {
  /** `Network`, host bits masked off. */
  network?: IP4Net;
  /** `IPv6Network`, host bits masked off. */
  ipv6Network?: IP6Net;
  /** `EnableIPv4`; true when absent. */
  enableIPv4: boolean;
  enableIPv6: boolean;
  /** `EnableNFTables`: use the nftables traffic manager instead of iptables. */
  enableNFTables: boolean;
  /** `SubnetLen`; 0 means "derive" until {@linkcode checkNetworkConfig} fills it in. */
  subnetLen: number;
  subnetMin?: IP4;
  subnetMax?: IP4;
  /** `IPv6SubnetLen`; 0 means "derive". */
  ipv6SubnetLen: number;
  ipv6SubnetMin?: IP6;
  ipv6SubnetMax?: IP6;
  /** `Backend.Type`, lower-cased; `"udp"` when `Backend` is absent (upstream's default). */
  backendType: string;
  /** The raw `Backend` object, for the backend to read its own options; `{}` when absent. */
  backend: Record<string, unknown>;
}

/** Where the text came from, for messages. */
export interface NetworkConfigOptions {
  /** Named in every message; defaults to `net-conf.json`. Etcd mode passes the key. */
  source?: string;
}

/**
 * A network configuration that cannot be parsed or fails validation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NetworkConfigError, parseNetworkConfig } from "./network_config.ts";
 * assert.throws(() => parseNetworkConfig('{"SubnetMin": "10.0.0.300"}'), NetworkConfigError);
 * ```
 */
export class NetworkConfigError extends Error {
  override readonly name = "NetworkConfigError";
  /** The upstream field name (`SubnetLen`), or `undefined` for a problem with the whole text. */
  readonly field: string | undefined;
  /** Upstream's error text, the last part of the message. */
  readonly reason: string;

  constructor(message: string, options: { field?: string; reason: string; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.field = options.field;
    this.reason = options.reason;
  }
}

const DEFAULT_SOURCE = "net-conf.json";
const MAX_SHOWN_VALUE = 80;

function describe(value: unknown): string {
  if (value === undefined) return "missing";
  const text = escapeControls(JSON.stringify(value) ?? String(value));
  return text.length > MAX_SHOWN_VALUE ? `${text.slice(0, MAX_SHOWN_VALUE)}…` : text;
}

function fieldError(source: string, field: string, value: unknown, reason: string): NetworkConfigError {
  return new NetworkConfigError(`Cannot parse ${source}: "${field}" is ${describe(value)}: ${reason}`, {
    field,
    reason,
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function jsonType(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
}

// --- JSON text ------------------------------------------------------------------------------------

class JsonProblem {
  constructor(readonly offset: number, readonly problem: string) {}
}

const JSON_NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * Finds where and why JSON text is invalid. Only called after `JSON.parse` failed: its messages
 * differ between engines and some carry no position.
 */
function locateJsonProblem(text: string): JsonProblem | undefined {
  let i = 0;
  const stop = (expected: string): never => {
    const c = text.codePointAt(i);
    const found = c === undefined
      ? "end of input"
      : c >= 0x20 && c < 0x7f
      ? JSON.stringify(text[i])
      : `U+${c.toString(16).toUpperCase().padStart(4, "0")}`;
    throw new JsonProblem(i, `expected ${expected}, found ${found}`);
  };
  const space = () => {
    while (" \t\n\r".includes(text[i] ?? "x")) i++;
  };
  const string = () => {
    for (i++;;) {
      const c = text[i];
      if (c === undefined) stop("a closing quote");
      else if (c === '"') return void i++;
      else if (c < " ") stop("an escaped control character");
      else if (c !== "\\") i++;
      else if ('"\\/bfnrt'.includes(text[i + 1] ?? "x")) i += 2;
      else if (/^u[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 6))) i += 6;
      else {
        i++;
        stop("an escape sequence");
      }
    }
  };
  const key = () => {
    space();
    if (text[i] !== '"') stop("a double-quoted property name");
    string();
    space();
    if (text[i] !== ":") stop("':'");
    i++;
  };
  // Iterative, with a stack of the brackets still open, so deep nesting cannot overflow the stack.
  const open: string[] = [];
  try {
    for (;;) {
      space();
      const c = text[i];
      if (c === "{" || c === "[") {
        const close = c === "{" ? "}" : "]";
        i++;
        space();
        if (text[i] !== close) {
          open.push(close);
          if (close === "}") key();
          continue;
        }
        i++;
      } else if (c === '"') {
        string();
      } else {
        const word = ["true", "false", "null"].find((w) => text.startsWith(w, i));
        JSON_NUMBER.lastIndex = i;
        if (word !== undefined) i += word.length;
        else if (JSON_NUMBER.test(text)) i = JSON_NUMBER.lastIndex;
        else stop("a JSON value");
      }
      // A value ended: close brackets until one takes another element.
      for (;;) {
        space();
        const close = open.at(-1);
        if (close === undefined) {
          if (i < text.length) stop("end of input");
          return undefined;
        }
        if (text[i] === close) {
          i++;
          open.pop();
        } else if (text[i] === ",") {
          i++;
          if (close === "}") key();
          break;
        } else {
          stop(`',' or '${close}'`);
        }
      }
    }
  } catch (e) {
    if (e instanceof JsonProblem) return e;
    throw e;
  }
}

function decodeJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    const found = locateJsonProblem(text);
    let reason: string;
    if (found === undefined) {
      reason = `invalid JSON: ${String(cause instanceof Error ? cause.message : cause).replace(/\s+/g, " ")}`;
    } else {
      const lines = text.slice(0, found.offset).split("\n");
      const where = `line ${lines.length}, column ${(lines.at(-1)?.length ?? 0) + 1}`;
      reason = `invalid JSON at ${where}: ${found.problem}`;
    }
    throw new NetworkConfigError(`Cannot parse ${source}: ${reason}`, { reason, cause });
  }
}

// --- fields ---------------------------------------------------------------------------------------

/** Reads the fields of one decoded document, each matched case-insensitively. */
class FieldReader {
  constructor(readonly doc: Record<string, unknown>, readonly source: string) {}

  fail(field: string, value: unknown, reason: string): never {
    throw fieldError(this.source, field, value, reason);
  }

  /** `true`/`false`; `null` or absent leaves the default, as Go does. */
  bool(field: string, fallback: boolean): boolean {
    const v = getField(this.doc, field);
    if (v === undefined || v === null) return fallback;
    return typeof v === "boolean" ? v : this.fail(field, v, "expected true or false");
  }

  /** A non-negative integer; `null` or absent is 0. */
  uint(field: string): number {
    const v = getField(this.doc, field);
    if (v === undefined || v === null) return 0;
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
    return this.fail(field, v, "expected a non-negative integer");
  }

  /**
   * An address field. Upstream strips the quotes off the raw JSON and parses what is left, so a
   * number or `null` is parsed as its own text and fails with the usual reason.
   */
  address<T>(
    field: string,
    parse: (s: string) => T | undefined,
    reason: (s: string) => string,
  ): T | undefined {
    const v = getField(this.doc, field);
    if (v === undefined) return undefined;
    const s = typeof v === "string" ? v : JSON.stringify(v);
    return parse(s) ?? this.fail(field, v, reason(s));
  }

  /** `Backend` and its `Type`: absent means udp; `null`, `{}` or a missing `Type` mean `""`. */
  backend(): { backendType: string; backend: Record<string, unknown> } {
    const raw = getField(this.doc, "Backend");
    if (raw === undefined) return { backendType: "udp", backend: {} };
    if (raw === null) return { backendType: "", backend: {} };
    const decoding = "error decoding Backend property of config";
    if (!isObject(raw)) {
      return this.fail("Backend", raw, `${decoding}: expected a JSON object, got ${jsonType(raw)}`);
    }
    const type = getField(raw, "Type");
    if (type === undefined || type === null) return { backendType: "", backend: raw };
    if (typeof type !== "string") {
      return this.fail("Backend", raw, `${decoding}: "Type" is ${describe(type)}, expected a string`);
    }
    return { backendType: type.toLowerCase(), backend: raw };
  }
}

/**
 * Parses network configuration JSON the way upstream does, without validation: keys match
 * case-insensitively, unknown keys are ignored, `EnableIPv4` defaults to true, a missing `Backend`
 * means `udp`, `Network` and `IPv6Network` lose their host bits.
 *
 * @throws {NetworkConfigError} for invalid JSON (with line and column), a document that is not an
 * object, or a field that cannot be decoded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseNetworkConfig } from "./network_config.ts";
 * const cfg = parseNetworkConfig('{"network": "10.3.0.0/16", "Backend": {"Type": "VXLAN"}}');
 * assert.equal(cfg.network?.toString(), "10.3.0.0/16");
 * assert.equal(cfg.backendType, "vxlan");
 * assert.equal(cfg.enableIPv4, true);
 * ```
 */
export function parseNetworkConfig(text: string, options: NetworkConfigOptions = {}): NetworkConfig {
  const source = options.source ?? DEFAULT_SOURCE;
  const doc = decodeJson(text, source);
  if (!isObject(doc)) {
    const reason = `expected a JSON object, got ${jsonType(doc)}`;
    throw new NetworkConfigError(`Cannot parse ${source}: ${reason}`, { reason });
  }
  const r = new FieldReader(doc, source);
  const network = r.address("Network", (s) => IP4Net.tryParse(s)?.network(), ip4NetParseReason);
  const ipv6Network = r.address("IPv6Network", (s) => IP6Net.tryParse(s)?.network(), ip6NetParseReason);
  const subnetMin = r.address("SubnetMin", IP4.tryParse, ip4ParseReason);
  const subnetMax = r.address("SubnetMax", IP4.tryParse, ip4ParseReason);
  const ipv6SubnetMin = r.address("IPv6SubnetMin", IP6.tryParse, () => "invalid IP address format");
  const ipv6SubnetMax = r.address("IPv6SubnetMax", IP6.tryParse, () => "invalid IP address format");
  return {
    ...(network && { network }),
    ...(ipv6Network && { ipv6Network }),
    enableIPv4: r.bool("EnableIPv4", true),
    enableIPv6: r.bool("EnableIPv6", false),
    enableNFTables: r.bool("EnableNFTables", false),
    subnetLen: r.uint("SubnetLen"),
    ...(subnetMin && { subnetMin }),
    ...(subnetMax && { subnetMax }),
    ipv6SubnetLen: r.uint("IPv6SubnetLen"),
    ...(ipv6SubnetMin && { ipv6SubnetMin }),
    ...(ipv6SubnetMax && { ipv6SubnetMax }),
    ...r.backend(),
  };
}

// --- validation -----------------------------------------------------------------------------------

function checkIPv4(cfg: NetworkConfig, source: string): Partial<NetworkConfig> {
  const fail = (field: string, value: unknown, reason: string) => fieldError(source, field, value, reason);
  const net = cfg.network?.network();
  if (net === undefined || net.isEmpty()) {
    throw fail("Network", cfg.network, "please define a correct Network parameter in the flannel config");
  }
  let subnetLen = cfg.subnetLen;
  if (subnetLen > 0) {
    if (subnetLen > 30) throw fail("SubnetLen", subnetLen, "SubnetLen must be less than /31");
    if (subnetLen < net.prefixLen + 2) {
      throw fail("SubnetLen", subnetLen, "network must be able to accommodate at least four subnets");
    }
  } else if (net.prefixLen > 28) {
    throw fail("Network", net, "network is too small. Minimum useful network prefix is /28");
  } else {
    subnetLen = net.prefixLen <= 22 ? 24 : net.prefixLen + 2;
  }
  const size = 2 ** (32 - subnetLen);
  // Upstream cannot tell 0.0.0.0 from "not set": both mean the default.
  const isSet = (ip: IP4 | undefined): ip is IP4 => ip !== undefined && !ip.isUnspecified();
  const subnetMin = isSet(cfg.subnetMin) ? cfg.subnetMin : net.ip.add(size);
  if (!net.contains(subnetMin)) {
    throw fail("SubnetMin", subnetMin, "SubnetMin is not in the range of the Network");
  }
  const subnetMax = isSet(cfg.subnetMax) ? cfg.subnetMax : net.ip.add(net.size() - size);
  if (!net.contains(subnetMax)) {
    throw fail("SubnetMax", subnetMax, "SubnetMax is not in the range of the Network");
  }
  for (const [field, ip] of [["SubnetMin", subnetMin], ["SubnetMax", subnetMax]] as const) {
    if (ip.value % size !== 0) throw fail(field, ip, `${field} is not on a SubnetLen boundary: ${ip}`);
  }
  return { network: net, subnetLen, subnetMin, subnetMax };
}

function checkIPv6(cfg: NetworkConfig, source: string): Partial<NetworkConfig> {
  const fail = (field: string, value: unknown, reason: string) => fieldError(source, field, value, reason);
  const net = cfg.ipv6Network?.network();
  if (net === undefined || net.isEmpty()) {
    throw fail(
      "IPv6Network",
      cfg.ipv6Network,
      "please define a correct IPv6Network parameter in the flannel config",
    );
  }
  let subnetLen = cfg.ipv6SubnetLen;
  if (subnetLen > 0) {
    if (subnetLen > 126) throw fail("IPv6SubnetLen", subnetLen, "SubnetLen must be less than /127");
    if (subnetLen < net.prefixLen + 2) {
      throw fail("IPv6SubnetLen", subnetLen, "network must be able to accommodate at least four subnets");
    }
  } else if (net.prefixLen > 124) {
    throw fail("IPv6Network", net, "IPv6Network is too small. Minimum useful network prefix is /124");
  } else {
    subnetLen = net.prefixLen <= 62 ? 64 : net.prefixLen + 2;
  }
  const size = 1n << BigInt(128 - subnetLen);
  const subnetMin = cfg.ipv6SubnetMin ?? net.ip.add(size);
  if (!net.contains(subnetMin)) {
    throw fail("IPv6SubnetMin", subnetMin, "IPv6SubnetMin is not in the range of the IPv6Network");
  }
  const subnetMax = cfg.ipv6SubnetMax ?? net.ip.add(net.size() - size);
  if (!net.contains(subnetMax)) {
    throw fail("IPv6SubnetMax", subnetMax, "IPv6SubnetMax is not in the range of the IPv6Network");
  }
  for (const [field, ip] of [["IPv6SubnetMin", subnetMin], ["IPv6SubnetMax", subnetMax]] as const) {
    if ((ip.value & (size - 1n)) !== 0n) {
      throw fail(field, ip, `${field} is not on a SubnetLen boundary: ${ip}`);
    }
  }
  return { ipv6Network: net, ipv6SubnetLen: subnetLen, ipv6SubnetMin: subnetMin, ipv6SubnetMax: subnetMax };
}

/**
 * Validates a parsed configuration for each enabled family and fills in the derived values:
 * `subnetLen` (24, or prefix + 2 for networks smaller than /22), `subnetMin` (the second subnet)
 * and `subnetMax` (the last subnet), and the IPv6 equivalents (64, prefix + 2 past /62).
 * `0.0.0.0` for `SubnetMin`/`SubnetMax` counts as unset. There is no check that min ≤ max.
 *
 * @throws {NetworkConfigError} with upstream's reason.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkNetworkConfig, parseNetworkConfig } from "./network_config.ts";
 * const cfg = checkNetworkConfig(parseNetworkConfig('{"Network": "10.3.0.0/16"}'));
 * assert.equal(cfg.subnetLen, 24);
 * assert.equal(cfg.subnetMin?.toString(), "10.3.1.0");
 * assert.equal(cfg.subnetMax?.toString(), "10.3.255.0");
 * ```
 */
export function checkNetworkConfig(cfg: NetworkConfig, options: NetworkConfigOptions = {}): NetworkConfig {
  const source = options.source ?? DEFAULT_SOURCE;
  return {
    ...cfg,
    ...(cfg.enableIPv4 ? checkIPv4(cfg, source) : {}),
    ...(cfg.enableIPv6 ? checkIPv6(cfg, source) : {}),
  };
}

/**
 * {@linkcode parseNetworkConfig} then {@linkcode checkNetworkConfig}, as etcd mode does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAndCheckNetworkConfig } from "./network_config.ts";
 * assert.throws(() => parseAndCheckNetworkConfig('{"Network": "10.3.0.0/16", "SubnetLen": 33}'), {
 *   message: 'Cannot parse net-conf.json: "SubnetLen" is 33: SubnetLen must be less than /31',
 * });
 * ```
 */
export function parseAndCheckNetworkConfig(text: string, options: NetworkConfigOptions = {}): NetworkConfig {
  return checkNetworkConfig(parseNetworkConfig(text, options), options);
}

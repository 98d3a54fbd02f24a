/**
 * flanneld's command line: the flags, their `FLANNELD_*` environment variables, and the
 * `CLI flags config: {…}` line the daemon logs at start-up.
 *
 * Syntax is Go's `flag` package, because flanneld is started by manifests, unit files and scripts
 * written for upstream: `-name` and `--name` are the same flag; a value is given as `-name=value` or
 * `-name value`; a bare boolean means true and `-name false` does NOT consume `false` (write
 * `-name=false`); integers take Go literals (`0x1F90`, `0o17`, `017`, `1_000`); parsing stops at the
 * first argument that is not a flag, or after `--`.
 *
 * Why not commander (DESIGN.md §3): every Go-ism above needs argv rewriting before commander sees it
 * (single-dash long names, `-v=10`, `--bool=false`, bools that must not swallow the next word,
 * stopping at the first positional), and then its environment handling (throws on bad values),
 * error texts and help layout all need overriding too. The normaliser alone would be a Go flag
 * parser; the whole parser below is a table and one loop, so it is the simpler and more faithful
 * choice.
 *
 * @module
 */

import { parseBacktraceAt, parseVmodule } from "../log/klog.ts";
import { formatUsage, type UsageEntry } from "./usage.ts";

/** Log line format: klog-style text (upstream's) or one JSON object per line. */
export type LogFormat = "klog" | "json";

/** Every flanneld option, after flags and `FLANNELD_*` env are applied. */
export interface Options {
  /** `--etcd-endpoints`, split on `,`. */
  etcdEndpoints: string[];
  /** `--etcd-prefix`. */
  etcdPrefix: string;
  /** `--etcd-keyfile`. */
  etcdKeyfile: string;
  /** `--etcd-certfile`. */
  etcdCertfile: string;
  /** `--etcd-cafile`. */
  etcdCafile: string;
  /** `--etcd-username`. */
  etcdUsername: string;
  /** `--etcd-password`. Never logged: {@linkcode formatOptions} redacts it. */
  etcdPassword: string;
  /** `--iface`, in the order given; may repeat. */
  iface: string[];
  /** `--iface-regex`, in the order given; may repeat. */
  ifaceRegex: string[];
  /** `--iface-can-reach`. */
  ifaceCanReach: string;
  /** `--subnet-file`. */
  subnetFile: string;
  /** `--public-ip`. */
  publicIp: string;
  /** `--public-ipv6`. */
  publicIpv6: string;
  /** `--subnet-lease-renew-margin`, minutes; checked by {@linkcode validateOptions}. */
  subnetLeaseRenewMargin: number;
  /** `--ip-masq`. */
  ipMasq: boolean;
  /** `--ip-masq-fully-random-disable`. */
  ipMasqFullyRandomDisable: boolean;
  /** `--kube-subnet-mgr`. */
  kubeSubnetMgr: boolean;
  /** `--kube-api-url`. */
  kubeApiUrl: string;
  /** `--kube-annotation-prefix`. */
  kubeAnnotationPrefix: string;
  /** `--kubeconfig-file`. */
  kubeconfigFile: string;
  /** `--version` (never set from the environment). */
  version: boolean;
  /** `--healthz-ip`. */
  healthzIp: string;
  /** `--healthz-port`; 0 disables the health server. */
  healthzPort: number;
  /** `--iptables-resync`, seconds. */
  iptablesResync: number;
  /** `--iptables-forward-rules`. */
  iptablesForwardRules: boolean;
  /** `--ip-blackhole-route`. */
  ipBlackholeRoute: boolean;
  /** `--net-config-path`. */
  netConfigPath: string;
  /** `--set-node-network-unavailable`. */
  setNodeNetworkUnavailable: boolean;
  /** `-v`, klog verbosity. */
  v: number;
  /** `-vmodule`, `pattern=N,…` per-component verbosity (validated when parsed). */
  vmodule: string;
  /** `-log_backtrace_at`, `file:N` (validated, accepted for compatibility, no effect). */
  logBacktraceAt: string;
  /** `--log-format` (ours, not upstream's). */
  logFormat: LogFormat;
  /** `--cleanup` (ours): remove what flanneld made on this node, then exit (daemon/cleanup.ts). */
  cleanup: boolean;
  /** `--cni-conf-file` (ours): the CNI config `--cleanup` removes when it is flannel's. */
  cniConfFile: string;
}

/** What {@linkcode parseFlags} decided. */
export type ParseResult =
  | {
    kind: "run";
    options: Options;
    /** One line per unusable `FLANNELD_*` value; the daemon logs them and carries on. */
    envWarnings: string[];
    /** Names (as in `etcd-endpoints`, `v`) of the flags given on the command line. */
    explicit: Set<string>;
  }
  | { kind: "version" }
  | { kind: "help"; text: string }
  | {
    kind: "error";
    /** One line naming the flag, the value and what was expected. */
    message: string;
    /** The help text, to print after the message. */
    usage: string;
  };

/**
 * The options with upstream's defaults.
 *
 * @example
 * ```ts
 * console.assert(defaultOptions().subnetFile === "/run/flannel/subnet.env");
 * ```
 */
export function defaultOptions(): Options {
  return {
    etcdEndpoints: ["http://127.0.0.1:4001", "http://127.0.0.1:2379"],
    etcdPrefix: "/coreos.com/network",
    etcdKeyfile: "",
    etcdCertfile: "",
    etcdCafile: "",
    etcdUsername: "",
    etcdPassword: "",
    iface: [],
    ifaceRegex: [],
    ifaceCanReach: "",
    subnetFile: "/run/flannel/subnet.env",
    publicIp: "",
    publicIpv6: "",
    subnetLeaseRenewMargin: 60,
    ipMasq: false,
    ipMasqFullyRandomDisable: false,
    kubeSubnetMgr: false,
    kubeApiUrl: "",
    kubeAnnotationPrefix: "flannel.alpha.coreos.com",
    kubeconfigFile: "",
    version: false,
    healthzIp: "0.0.0.0",
    healthzPort: 0,
    iptablesResync: 5,
    iptablesForwardRules: true,
    ipBlackholeRoute: false,
    netConfigPath: "/etc/kube-flannel/net-conf.json",
    setNodeNetworkUnavailable: true,
    v: 0,
    vmodule: "",
    logBacktraceAt: "",
    logFormat: "klog",
    cleanup: false,
    cniConfFile: "/etc/cni/net.d/10-flannel.conflist",
  };
}

// ---------------------------------------------------------------------------------------------
// The flag table.

/** Keys of Options whose type is exactly `V`. */
type KeysOf<V> = {
  [K in keyof Options]: [Options[K]] extends [V] ? ([V] extends [Options[K]] ? K : never) : never;
}[
  keyof Options
];

interface FlagSpec {
  name: string;
  /** Go's placeholder in the help listing: `string`, `int`, `value`, or `""` for booleans. */
  typeName: string;
  usage: string;
  isBool: boolean;
  /** Applies `raw`; throws an Error whose message is the reason when `raw` is unusable. */
  set(o: Options, raw: string): void;
  /** The default for the help listing, or undefined when it is the zero value (Go hides those). */
  defaultText(d: Options): string | undefined;
}

function stringFlag(name: string, key: KeysOf<string>, usage: string): FlagSpec {
  return {
    name,
    typeName: "string",
    usage,
    isBool: false,
    set: (o, raw) => {
      o[key] = raw;
    },
    defaultText: (d) => (d[key] === "" ? undefined : JSON.stringify(d[key])),
  };
}

function boolFlag(name: string, key: KeysOf<boolean>, usage: string): FlagSpec {
  return {
    name,
    typeName: "",
    usage,
    isBool: true,
    set: (o, raw) => {
      o[key] = parseGoBool(raw);
    },
    defaultText: (d) => (d[key] ? "true" : undefined),
  };
}

function intFlag(name: string, key: KeysOf<number>, usage: string): FlagSpec {
  return {
    name,
    typeName: "int",
    usage,
    isBool: false,
    set: (o, raw) => {
      o[key] = parseGoInt(raw);
    },
    defaultText: (d) => (d[key] === 0 ? undefined : String(d[key])),
  };
}

/** A flag whose setter is not a plain field write. */
function valueFlag(
  name: string,
  typeName: string,
  usage: string,
  how: Pick<FlagSpec, "set"> & Partial<Pick<FlagSpec, "defaultText">>,
): FlagSpec {
  return {
    name,
    typeName,
    usage,
    isBool: false,
    set: how.set,
    defaultText: how.defaultText ?? (() => undefined),
  };
}

function listFlag(name: string, key: KeysOf<string[]>, usage: string): FlagSpec {
  return {
    name,
    typeName: "value",
    usage,
    isBool: false,
    set: (o, raw) => {
      o[key] = [...o[key], raw];
    },
    defaultText: () => undefined,
  };
}

/** Upstream's flags and usage texts, plus klog's three, plus our `--log-format`, `--cleanup`, `--cni-conf-file`. */
const FLAGS: readonly FlagSpec[] = [
  valueFlag("etcd-endpoints", "string", "a comma-delimited list of etcd endpoints", {
    set: (o, raw) => {
      o.etcdEndpoints = raw.split(",");
    },
    defaultText: (d) => JSON.stringify(d.etcdEndpoints.join(",")),
  }),
  stringFlag("etcd-prefix", "etcdPrefix", "etcd prefix"),
  stringFlag("etcd-keyfile", "etcdKeyfile", "SSL key file used to secure etcd communication"),
  stringFlag("etcd-certfile", "etcdCertfile", "SSL certification file used to secure etcd communication"),
  stringFlag("etcd-cafile", "etcdCafile", "SSL Certificate Authority file used to secure etcd communication"),
  stringFlag("etcd-username", "etcdUsername", "username for BasicAuth to etcd"),
  stringFlag("etcd-password", "etcdPassword", "password for BasicAuth to etcd"),
  listFlag(
    "iface",
    "iface",
    "interface to use (IP or name) for inter-host communication. Can be specified multiple times to " +
      "check each option in order. Returns the first match found.",
  ),
  listFlag(
    "iface-regex",
    "ifaceRegex",
    "regex expression to match the first interface to use (IP or name) for inter-host communication. " +
      "Can be specified multiple times to check each regex in order. Returns the first match found. " +
      "Regexes are checked after specific interfaces specified by the iface option have already been checked.",
  ),
  stringFlag(
    "iface-can-reach",
    "ifaceCanReach",
    "detect interface to use (IP or name) for inter-host communication based on which will be used for " +
      "provided IP. This is exactly the interface to use of command 'ip route get <ip-address>'",
  ),
  stringFlag(
    "subnet-file",
    "subnetFile",
    "filename where env variables (subnet, MTU, ... ) will be written to",
  ),
  stringFlag("public-ip", "publicIp", "IP accessible by other nodes for inter-host communication"),
  stringFlag("public-ipv6", "publicIpv6", "IPv6 accessible by other nodes for inter-host communication"),
  intFlag(
    "subnet-lease-renew-margin",
    "subnetLeaseRenewMargin",
    "subnet lease renewal margin, in minutes, ranging from 1 to 1439",
  ),
  boolFlag("ip-masq", "ipMasq", "setup IP masquerade rule for traffic destined outside of overlay network"),
  boolFlag(
    "ip-masq-fully-random-disable",
    "ipMasqFullyRandomDisable",
    "disable fully-random mode for MASQUERADE",
  ),
  boolFlag(
    "kube-subnet-mgr",
    "kubeSubnetMgr",
    "contact the Kubernetes API for subnet assignment instead of etcd.",
  ),
  stringFlag(
    "kube-api-url",
    "kubeApiUrl",
    "Kubernetes API server URL. Does not need to be specified if flannel is running in a pod.",
  ),
  stringFlag(
    "kube-annotation-prefix",
    "kubeAnnotationPrefix",
    'Kubernetes annotation prefix. Can contain single slash "/", otherwise it will be appended at the end.',
  ),
  stringFlag(
    "kubeconfig-file",
    "kubeconfigFile",
    "kubeconfig file location. Does not need to be specified if flannel is running in a pod.",
  ),
  boolFlag("version", "version", "print version and exit"),
  stringFlag("healthz-ip", "healthzIp", "the IP address for healthz server to listen"),
  intFlag("healthz-port", "healthzPort", "the port for healthz server to listen(0 to disable)"),
  intFlag("iptables-resync", "iptablesResync", "resync period for iptables rules, in seconds"),
  boolFlag(
    "iptables-forward-rules",
    "iptablesForwardRules",
    "add default accept rules to FORWARD chain in iptables",
  ),
  boolFlag(
    "ip-blackhole-route",
    "ipBlackholeRoute",
    "add a blackhole route on the node for the local podCIDR",
  ),
  stringFlag("net-config-path", "netConfigPath", "path to the network configuration file"),
  boolFlag(
    "set-node-network-unavailable",
    "setNodeNetworkUnavailable",
    "set NodeNetworkUnavailable after ready",
  ),
  // klog's flags, which upstream copies into its flag set. klog's types are Go `flag.Value`s, so Go's
  // help shows them as `value`.
  valueFlag("v", "value", "number for the log level verbosity", {
    set: (o, raw) => {
      o.v = parseKlogLevel(raw);
    },
  }),
  valueFlag("vmodule", "value", "comma-separated list of pattern=N settings for file-filtered logging", {
    set: (o, raw) => {
      parseVmodule(raw);
      o.vmodule = raw;
    },
  }),
  valueFlag(
    "log_backtrace_at",
    "value",
    "when logging hits line file:N, emit a stack trace (accepted for compatibility; no effect)",
    {
      set: (o, raw) => {
        parseBacktraceAt(raw);
        o.logBacktraceAt = raw;
      },
    },
  ),
  valueFlag("log-format", "string", 'log line format: "klog" or "json"', {
    set: (o, raw) => {
      if (raw !== "klog" && raw !== "json") throw new Error('must be "klog" or "json"');
      o.logFormat = raw;
    },
    defaultText: (d) => JSON.stringify(d.logFormat),
  }),
  boolFlag(
    "cleanup",
    "cleanup",
    "remove what flanneld made on this node (its lease if provably ours, devices, proto 91 routes, ipsec " +
      "policies, iptables/nftables rules, subnet file, WireGuard key, flannel CNI config), then exit; stop flanneld first",
  ),
  stringFlag("cni-conf-file", "cniConfFile", "the CNI config --cleanup removes when it is flannel's"),
];

const BY_NAME: ReadonlyMap<string, FlagSpec> = new Map(FLAGS.map((f) => [f.name, f]));
/** By name, the order Go visits flags in (and so the order of env warnings). */
const SORTED: readonly FlagSpec[] = [...FLAGS].sort((a, b) => (a.name < b.name ? -1 : 1));

/** The environment variable for a flag: `FLANNELD_` + name upper-cased, `-` → `_`. */
export function envName(flag: string): string {
  return "FLANNELD_" + flag.toUpperCase().replaceAll("-", "_");
}

// ---------------------------------------------------------------------------------------------
// Value syntax.

/** Go's `strconv.ParseBool` spellings. */
function parseGoBool(raw: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(raw)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(raw)) return false;
  throw new Error("must be true or false");
}

/** A Go integer literal: optional sign, then decimal, `0x`, `0o`, `0b` or legacy `0`-octal, `_` between digits. */
const GO_INT =
  /^[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)$/;

/** Parses an int the way Go's `flag.Int` does (base from the prefix), within JavaScript's safe range. */
function parseGoInt(raw: string): number {
  if (!GO_INT.test(raw)) throw new Error("must be an integer");
  const neg = raw.startsWith("-");
  let digits = raw.replace(/^[+-]/, "").replaceAll("_", "");
  if (/^0[0-7]/.test(digits)) digits = "0o" + digits.slice(1); // legacy octal: 017 == 0o17
  const n = BigInt(digits) * (neg ? -1n : 1n);
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new Error("value out of range");
  }
  return Number(n);
}

/** klog's `-v`: a base-10 32-bit integer. */
function parseKlogLevel(raw: string): number {
  if (!/^[+-]?[0-9]+$/.test(raw)) throw new Error("must be an integer");
  const n = Number(raw);
  if (n > 2147483647 || n < -2147483648) throw new Error("value out of range");
  return n;
}

function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------
// Parsing.

function usageEntries(): UsageEntry[] {
  const d = defaultOptions();
  return FLAGS.map((f) => {
    const defaultText = f.defaultText(d);
    return defaultText === undefined
      ? { name: f.name, typeName: f.typeName, usage: f.usage }
      : { name: f.name, typeName: f.typeName, usage: f.usage, defaultText };
  });
}

/**
 * The help text: `Usage: <argv0> [OPTION]...` and Go's flag listing, ending with a newline.
 *
 * @example
 * ```ts
 * console.assert(usageText("flanneld").includes("  -healthz-port int\n"));
 * ```
 */
export function usageText(argv0 = "flanneld"): string {
  return formatUsage(argv0, usageEntries());
}

/**
 * Parses the command line (without the program name, like `Deno.args`) and then applies
 * `FLANNELD_*` variables from `env` to every flag the command line did not set.
 *
 * Order follows upstream: the command line is parsed completely first; a `--version` there wins
 * before the environment is looked at (so `FLANNELD_VERSION` does nothing); then env values are
 * applied, and a bad one becomes a warning instead of an error. Empty env values are ignored, and
 * for `--iface`/`--iface-regex` an env value is one entry (no comma splitting).
 *
 * `-h`/`-help` give `kind: "help"`; a bad flag or value, or any positional argument, gives
 * `kind: "error"` (the caller prints message and usage to stderr and exits 2).
 *
 * @example
 * ```ts
 * const r = parseFlags(["-iface=eth0", "--ip-masq"], { FLANNELD_IFACE: "eth1", FLANNELD_V: "2" });
 * if (r.kind === "run") {
 *   console.assert(r.options.iface.join() === "eth0" && r.options.ipMasq && r.options.v === 2);
 * }
 * ```
 */
export function parseFlags(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  opts: { argv0?: string } = {},
): ParseResult {
  const argv0 = opts.argv0 ?? "flanneld";
  const error = (message: string): ParseResult => ({ kind: "error", message, usage: usageText(argv0) });
  const options = defaultOptions();
  const explicit = new Set<string>();

  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    // Like Go: "-" alone and anything not starting with "-" ends the flags; "--" ends them and is eaten.
    if (arg.length < 2 || arg[0] !== "-") break;
    if (arg === "--") {
      i++;
      break;
    }
    const body = arg.startsWith("--") ? arg.slice(2) : arg.slice(1);
    if (body === "" || body[0] === "-" || body[0] === "=") return error(`bad flag syntax: ${arg}`);
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    let value = eq < 0 ? undefined : body.slice(eq + 1);

    const spec = BY_NAME.get(name);
    if (spec === undefined) {
      if (name === "h" || name === "help") return { kind: "help", text: usageText(argv0) };
      return error(`flag provided but not defined: -${name}`);
    }
    if (value === undefined) {
      if (spec.isBool) {
        value = "true";
      } else if (i + 1 < argv.length) {
        value = argv[++i]!;
      } else {
        return error(`flag needs an argument: -${name}`);
      }
    }
    try {
      spec.set(options, value);
    } catch (e) {
      return error(`invalid value ${JSON.stringify(value)} for flag -${name}: ${reasonOf(e)}`);
    }
    explicit.add(name);
  }
  if (i < argv.length) {
    return error(`unexpected argument ${JSON.stringify(argv[i])}: flanneld takes no positional arguments`);
  }

  if (options.version) return { kind: "version" };

  const envWarnings: string[] = [];
  for (const spec of SORTED) {
    if (explicit.has(spec.name) || spec.name === "version") continue;
    const key = envName(spec.name);
    const value = env[key];
    if (value === undefined || value === "") continue;
    try {
      spec.set(options, value);
    } catch (e) {
      envWarnings.push(`invalid value ${JSON.stringify(value)} for ${key}: ${reasonOf(e)}`);
    }
  }
  return { kind: "run", options, envWarnings, explicit };
}

/**
 * Checks what the parser cannot: returns upstream's message when the renew margin is outside
 * `0 < m < 1440` minutes, else `undefined`. The daemon calls it after logging the config and exits 1
 * on a message, as upstream does.
 *
 * @example
 * ```ts
 * console.assert(validateOptions({ ...defaultOptions(), subnetLeaseRenewMargin: 1440 }) !== undefined);
 * ```
 */
export function validateOptions(o: Options): string | undefined {
  if (o.subnetLeaseRenewMargin <= 0 || o.subnetLeaseRenewMargin >= 24 * 60) {
    return "Invalid subnet-lease-renew-margin option, out of acceptable range";
  }
  return undefined;
}

/**
 * The `{…}` of the start-up line `CLI flags config: {…}` (the caller adds the prefix), with
 * upstream's field names and order as Go's `%+v` prints its options struct, so greps for e.g.
 * `ipMasq:true` keep working; then our `logFormat`. A non-empty etcd password is shown as
 * `<redacted>`. klog's `-v`, `-vmodule`, `-log_backtrace_at` are not part of upstream's struct and
 * are not shown.
 *
 * @example
 * ```ts
 * console.assert(formatOptions(defaultOptions()).startsWith(
 *   "{etcdEndpoints:http://127.0.0.1:4001,http://127.0.0.1:2379 etcdPrefix:",
 * ));
 * ```
 */
export function formatOptions(o: Options): string {
  const list = (xs: readonly string[]) => `[${xs.join(" ")}]`;
  const fields: [string, string | number | boolean][] = [
    ["etcdEndpoints", o.etcdEndpoints.join(",")],
    ["etcdPrefix", o.etcdPrefix],
    ["etcdKeyfile", o.etcdKeyfile],
    ["etcdCertfile", o.etcdCertfile],
    ["etcdCAFile", o.etcdCafile],
    ["etcdUsername", o.etcdUsername],
    ["etcdPassword", o.etcdPassword === "" ? "" : "<redacted>"],
    ["version", o.version],
    ["kubeSubnetMgr", o.kubeSubnetMgr],
    ["kubeApiUrl", o.kubeApiUrl],
    ["kubeAnnotationPrefix", o.kubeAnnotationPrefix],
    ["kubeConfigFile", o.kubeconfigFile],
    ["iface", list(o.iface)],
    ["ifaceRegex", list(o.ifaceRegex)],
    ["ipMasq", o.ipMasq],
    ["ipMasqRandomFullyDisable", o.ipMasqFullyRandomDisable],
    ["ifaceCanReach", o.ifaceCanReach],
    ["subnetFile", o.subnetFile],
    ["publicIP", o.publicIp],
    ["publicIPv6", o.publicIpv6],
    ["subnetLeaseRenewMargin", o.subnetLeaseRenewMargin],
    ["healthzIP", o.healthzIp],
    ["healthzPort", o.healthzPort],
    ["iptablesResyncSeconds", o.iptablesResync],
    ["iptablesForwardRules", o.iptablesForwardRules],
    ["blackholeRoute", o.ipBlackholeRoute],
    ["netConfPath", o.netConfigPath],
    ["setNodeNetworkUnavailable", o.setNodeNetworkUnavailable],
    ["logFormat", o.logFormat],
  ];
  return `{${fields.map(([k, v]) => `${k}:${v}`).join(" ")}}`;
}

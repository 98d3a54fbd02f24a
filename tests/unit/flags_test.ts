import assert from "node:assert/strict";
import {
  defaultOptions,
  envName,
  formatOptions,
  type Options,
  parseFlags,
  type ParseResult,
  usageText,
  validateOptions,
} from "../../src/cli/flags.ts";

function run(argv: string[], env: Record<string, string | undefined> = {}) {
  const r = parseFlags(argv, env);
  assert.equal(r.kind, "run", JSON.stringify(r));
  return r as Extract<ParseResult, { kind: "run" }>;
}

function errorOf(argv: string[]): string {
  const r = parseFlags(argv, {});
  assert.equal(r.kind, "error", JSON.stringify(r));
  return (r as Extract<ParseResult, { kind: "error" }>).message;
}

Deno.test("every flag has upstream's default", () => {
  const expected: Options = {
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
  const r = run([]);
  assert.deepEqual(r.options, expected);
  assert.deepEqual(r.envWarnings, []);
  assert.equal(r.explicit.size, 0);
  assert.deepEqual(defaultOptions(), expected);
});

Deno.test("every flag is settable by name, on the command line and from env", () => {
  const cases: [flag: string, value: string, key: keyof Options, want: unknown][] = [
    ["etcd-endpoints", "https://a:2379,https://b:2379", "etcdEndpoints", [
      "https://a:2379",
      "https://b:2379",
    ]],
    ["etcd-prefix", "/p", "etcdPrefix", "/p"],
    ["etcd-keyfile", "/k", "etcdKeyfile", "/k"],
    ["etcd-certfile", "/c", "etcdCertfile", "/c"],
    ["etcd-cafile", "/ca", "etcdCafile", "/ca"],
    ["etcd-username", "u", "etcdUsername", "u"],
    ["etcd-password", "pw", "etcdPassword", "pw"],
    ["iface", "eth0", "iface", ["eth0"]],
    ["iface-regex", "^en", "ifaceRegex", ["^en"]],
    ["iface-can-reach", "8.8.8.8", "ifaceCanReach", "8.8.8.8"],
    ["subnet-file", "/tmp/s.env", "subnetFile", "/tmp/s.env"],
    ["public-ip", "10.0.0.1", "publicIp", "10.0.0.1"],
    ["public-ipv6", "fd00::1", "publicIpv6", "fd00::1"],
    ["subnet-lease-renew-margin", "30", "subnetLeaseRenewMargin", 30],
    ["ip-masq", "true", "ipMasq", true],
    ["ip-masq-fully-random-disable", "true", "ipMasqFullyRandomDisable", true],
    ["kube-subnet-mgr", "true", "kubeSubnetMgr", true],
    ["kube-api-url", "https://k:6443", "kubeApiUrl", "https://k:6443"],
    ["kube-annotation-prefix", "example.com/x", "kubeAnnotationPrefix", "example.com/x"],
    ["kubeconfig-file", "/kc", "kubeconfigFile", "/kc"],
    ["healthz-ip", "127.0.0.1", "healthzIp", "127.0.0.1"],
    ["healthz-port", "8080", "healthzPort", 8080],
    ["iptables-resync", "9", "iptablesResync", 9],
    ["iptables-forward-rules", "false", "iptablesForwardRules", false],
    ["ip-blackhole-route", "true", "ipBlackholeRoute", true],
    ["net-config-path", "/n.json", "netConfigPath", "/n.json"],
    ["set-node-network-unavailable", "false", "setNodeNetworkUnavailable", false],
    ["v", "4", "v", 4],
    ["vmodule", "etcd=3", "vmodule", "etcd=3"],
    ["log_backtrace_at", "main.go:215", "logBacktraceAt", "main.go:215"],
    ["log-format", "json", "logFormat", "json"],
    ["cleanup", "true", "cleanup", true],
    ["cni-conf-file", "/tmp/x.conflist", "cniConfFile", "/tmp/x.conflist"],
  ];
  for (const [flag, value, key, want] of cases) {
    assert.deepEqual(run([`--${flag}=${value}`]).options[key], want, `--${flag}`);
    assert.deepEqual(run([`-${flag}=${value}`]).options[key], want, `-${flag}`);
    const fromEnv = run([], { [envName(flag)]: value });
    assert.deepEqual(fromEnv.options[key], want, envName(flag));
    assert.deepEqual(fromEnv.envWarnings, []);
  }
});

Deno.test("env names follow upstream's mapping", () => {
  assert.equal(envName("etcd-endpoints"), "FLANNELD_ETCD_ENDPOINTS");
  assert.equal(envName("v"), "FLANNELD_V");
  assert.equal(envName("log_backtrace_at"), "FLANNELD_LOG_BACKTRACE_AT");
  assert.equal(run([], { FLANNELD_V: "10" }).options.v, 10);
  assert.equal(run([], { FLANNELD_LOG_BACKTRACE_AT: "kube.go:139" }).options.logBacktraceAt, "kube.go:139");
  assert.equal(run([], { FLANNELD_IP_MASQ: "true" }).options.ipMasq, true);
  assert.deepEqual(run([], { FLANNELD_ETCD_ENDPOINTS: "http://a:1,http://b:2" }).options.etcdEndpoints, [
    "http://a:1",
    "http://b:2",
  ]);
});

Deno.test("FLANNELD_IFACE with a comma stays one entry", () => {
  assert.deepEqual(run([], { FLANNELD_IFACE: "eth0,eth1" }).options.iface, ["eth0,eth1"]);
  assert.deepEqual(run([], { FLANNELD_IFACE_REGEX: "^en,^eth" }).options.ifaceRegex, ["^en,^eth"]);
});

Deno.test("empty env values are ignored", () => {
  const r = run([], { FLANNELD_ETCD_PREFIX: "", FLANNELD_HEALTHZ_PORT: "", FLANNELD_IFACE: "" });
  assert.equal(r.options.etcdPrefix, "/coreos.com/network");
  assert.equal(r.options.healthzPort, 0);
  assert.deepEqual(r.options.iface, []);
  assert.deepEqual(r.envWarnings, []);
});

Deno.test("the command line beats env, flag by flag", () => {
  const r = run(["--iface=eth0", "--iface", "eth1", "-v=2"], {
    FLANNELD_IFACE: "eth9",
    FLANNELD_V: "7",
    FLANNELD_ETCD_PREFIX: "/from-env",
  });
  assert.deepEqual(r.options.iface, ["eth0", "eth1"]);
  assert.equal(r.options.v, 2);
  assert.equal(r.options.etcdPrefix, "/from-env");
  assert.deepEqual([...r.explicit].sort(), ["iface", "v"]);
});

Deno.test("a bad env value warns, keeps the default and carries on", () => {
  const r = run([], {
    FLANNELD_HEALTHZ_PORT: "abc",
    FLANNELD_IP_MASQ: "yes",
    FLANNELD_LOG_FORMAT: "xml",
    FLANNELD_ETCD_PREFIX: "/ok",
  });
  assert.deepEqual(r.envWarnings, [
    'invalid value "abc" for FLANNELD_HEALTHZ_PORT: must be an integer',
    'invalid value "yes" for FLANNELD_IP_MASQ: must be true or false',
    'invalid value "xml" for FLANNELD_LOG_FORMAT: must be "klog" or "json"',
  ]);
  assert.equal(r.options.healthzPort, 0);
  assert.equal(r.options.ipMasq, false);
  assert.equal(r.options.logFormat, "klog");
  assert.equal(r.options.etcdPrefix, "/ok");
});

Deno.test("Go flag syntax: dashes, = and separate values", () => {
  assert.deepEqual(run(["-iface=eth0"]).options.iface, ["eth0"]);
  assert.deepEqual(run(["--iface", "eth0"]).options.iface, ["eth0"]);
  assert.deepEqual(run(["-iface", "eth0", "--iface=eth1", "-iface-regex", "^en"]).options, {
    ...defaultOptions(),
    iface: ["eth0", "eth1"],
    ifaceRegex: ["^en"],
  });
  assert.equal(run(["-v=10"]).options.v, 10);
  assert.equal(run(["-v", "10"]).options.v, 10);
  assert.equal(run(["--v=10"]).options.v, 10);
  // A separate value is taken as is, even when it looks like a flag.
  assert.equal(run(["--etcd-prefix", "-x"]).options.etcdPrefix, "-x");
  // "=" with nothing after sets the empty string.
  assert.equal(run(["--healthz-ip="]).options.healthzIp, "");
  assert.deepEqual(run(["--etcd-endpoints="]).options.etcdEndpoints, [""]);
  // Later wins for scalar flags.
  assert.equal(run(["--etcd-prefix=/a", "--etcd-prefix=/b"]).options.etcdPrefix, "/b");
});

Deno.test("Go flag syntax: booleans", () => {
  assert.equal(run(["--ip-masq"]).options.ipMasq, true);
  assert.equal(run(["-ip-masq"]).options.ipMasq, true);
  assert.equal(run(["--ip-masq=false"]).options.ipMasq, false);
  assert.equal(run(["--iptables-forward-rules=false"]).options.iptablesForwardRules, false);
  for (const t of ["1", "t", "T", "TRUE", "true", "True"]) {
    assert.equal(run([`--ip-masq=${t}`]).options.ipMasq, true);
  }
  for (const f of ["0", "f", "F", "FALSE", "false", "False"]) {
    assert.equal(run([`--iptables-forward-rules=${f}`]).options.iptablesForwardRules, false);
  }
  // "--x false" does not consume "false": it is a positional argument, which flanneld rejects.
  assert.equal(
    errorOf(["--iptables-forward-rules", "false"]),
    'unexpected argument "false": flanneld takes no positional arguments',
  );
  assert.equal(errorOf(["--ip-masq=yes"]), 'invalid value "yes" for flag -ip-masq: must be true or false');
});

Deno.test("Go flag syntax: integers", () => {
  assert.equal(run(["-healthz-port=0x1F90"]).options.healthzPort, 8080);
  assert.equal(run(["--healthz-port", "0X1f90"]).options.healthzPort, 8080);
  assert.equal(run(["--iptables-resync=017"]).options.iptablesResync, 15);
  assert.equal(run(["--iptables-resync=0o17"]).options.iptablesResync, 15);
  assert.equal(run(["--iptables-resync=0b101"]).options.iptablesResync, 5);
  assert.equal(run(["--iptables-resync=1_000"]).options.iptablesResync, 1000);
  assert.equal(run(["--iptables-resync=+7"]).options.iptablesResync, 7);
  assert.equal(run(["--subnet-lease-renew-margin=-5"]).options.subnetLeaseRenewMargin, -5);
  assert.equal(run(["--healthz-port=0"]).options.healthzPort, 0);
  for (const bad of ["abc", "", "1.5", "08", "0x", "_1", "1_", "1__0", "0x1G", " 1"]) {
    assert.equal(
      errorOf([`--healthz-port=${bad}`]),
      `invalid value ${JSON.stringify(bad)} for flag -healthz-port: must be an integer`,
    );
  }
  assert.equal(
    errorOf(["--healthz-port=9007199254740993"]),
    'invalid value "9007199254740993" for flag -healthz-port: value out of range',
  );
  // klog's -v is base 10 only.
  assert.equal(errorOf(["-v=0x2"]), 'invalid value "0x2" for flag -v: must be an integer');
  assert.equal(errorOf(["-v=2147483648"]), 'invalid value "2147483648" for flag -v: value out of range');
});

Deno.test("klog flag values are validated", () => {
  assert.equal(run(["-vmodule=etcd=3,kube*=5"]).options.vmodule, "etcd=3,kube*=5");
  assert.equal(
    errorOf(["-vmodule=etcd"]),
    'invalid value "etcd" for flag -vmodule: must be a comma-separated list of pattern=N',
  );
  assert.equal(
    errorOf(["-vmodule=etcd=-1"]),
    'invalid value "etcd=-1" for flag -vmodule: level of etcd must not be negative',
  );
  assert.equal(
    errorOf(["-log_backtrace_at=nofile"]),
    'invalid value "nofile" for flag -log_backtrace_at: must be file:N, e.g. main.go:215',
  );
  assert.equal(
    errorOf(["-log_backtrace_at=main.go:0"]),
    'invalid value "main.go:0" for flag -log_backtrace_at: line must be positive',
  );
});

Deno.test("unknown flags, missing values, bad syntax and positionals are errors", () => {
  assert.equal(errorOf(["--foo"]), "flag provided but not defined: -foo");
  assert.equal(errorOf(["-foo=1"]), "flag provided but not defined: -foo");
  assert.equal(errorOf(["--ip-masq", "--nope"]), "flag provided but not defined: -nope");
  assert.equal(errorOf(["--healthz-port"]), "flag needs an argument: -healthz-port");
  assert.equal(errorOf(["---iface=x"]), "bad flag syntax: ---iface=x");
  assert.equal(errorOf(["-=x"]), "bad flag syntax: -=x");
  assert.equal(errorOf(["eth0"]), 'unexpected argument "eth0": flanneld takes no positional arguments');
  assert.equal(errorOf(["-"]), 'unexpected argument "-": flanneld takes no positional arguments');
  assert.equal(errorOf(["--", "x"]), 'unexpected argument "x": flanneld takes no positional arguments');
  // Parsing stops at the first non-flag, like Go: the flag after it is never seen.
  assert.equal(errorOf(["x", "--foo"]), 'unexpected argument "x": flanneld takes no positional arguments');
  // "--" alone ends the flags and is fine.
  assert.equal(run(["--ip-masq", "--"]).options.ipMasq, true);

  const r = parseFlags(["--foo"], {}, { argv0: "/opt/bin/flanneld" });
  assert.equal(r.kind, "error");
  if (r.kind === "error") assert.ok(r.usage.startsWith("Usage: /opt/bin/flanneld [OPTION]...\n"));
});

Deno.test("--version wins before env, and only after a clean parse", () => {
  assert.deepEqual(parseFlags(["--version"], {}), { kind: "version" });
  assert.deepEqual(parseFlags(["-version"], { FLANNELD_HEALTHZ_PORT: "abc" }), { kind: "version" });
  assert.equal(run(["--version=false"]).options.version, false);
  // FLANNELD_VERSION has no effect (upstream checks --version before applying env).
  assert.equal(run([], { FLANNELD_VERSION: "true" }).options.version, false);
  assert.equal(parseFlags(["--version", "--foo"], {}).kind, "error");
});

Deno.test("-h and --help give the usage text", () => {
  for (const h of ["-h", "--h", "-help", "--help"]) {
    const r = parseFlags(["--ip-masq", h, "--not-reached"], {});
    assert.deepEqual(r, { kind: "help", text: usageText() });
  }
  const text = usageText("flanneld");
  assert.ok(text.startsWith("Usage: flanneld [OPTION]...\n"));
  assert.ok(text.endsWith("\n"));
  assert.ok(
    text.includes(
      '  -etcd-endpoints string\n    \ta comma-delimited list of etcd endpoints (default "http://127.0.0.1:4001,http://127.0.0.1:2379")\n',
    ),
  );
  assert.ok(
    text.includes("  -healthz-port int\n    \tthe port for healthz server to listen(0 to disable)\n"),
  );
  assert.ok(
    text.includes("  -iptables-resync int\n    \tresync period for iptables rules, in seconds (default 5)\n"),
  );
  assert.ok(
    text.includes(
      "  -ip-masq\n    \tsetup IP masquerade rule for traffic destined outside of overlay network\n",
    ),
  );
  assert.ok(
    text.includes(
      "  -iptables-forward-rules\n    \tadd default accept rules to FORWARD chain in iptables (default true)\n",
    ),
  );
  assert.ok(text.includes("  -iface value\n    \tinterface to use"));
  assert.ok(text.includes("  -v value\n    \tnumber for the log level verbosity\n"));
  assert.ok(
    text.includes('  -log-format string\n    \tlog line format: "klog" or "json" (default "klog")\n'),
  );
  // Sorted by name, as Go lists them.
  const names = [...text.matchAll(/^ {2}-(\S+)/gm)].map((m) => m[1]!);
  assert.deepEqual(names, [...names].sort());
  assert.equal(names.length, 34); // upstream's 28, klog's 3, our log-format, cleanup, cni-conf-file
  assert.ok(!names.includes("h") && !names.includes("help"));
});

Deno.test("validateOptions checks the renew margin", () => {
  const msg = "Invalid subnet-lease-renew-margin option, out of acceptable range";
  for (const m of [0, -1, 1440, 5000]) {
    assert.equal(validateOptions({ ...defaultOptions(), subnetLeaseRenewMargin: m }), msg, String(m));
  }
  for (const m of [1, 60, 1439]) {
    assert.equal(validateOptions({ ...defaultOptions(), subnetLeaseRenewMargin: m }), undefined, String(m));
  }
});

Deno.test("formatOptions prints upstream's %+v field names and order", () => {
  assert.equal(
    formatOptions(defaultOptions()),
    "{etcdEndpoints:http://127.0.0.1:4001,http://127.0.0.1:2379 etcdPrefix:/coreos.com/network " +
      "etcdKeyfile: etcdCertfile: etcdCAFile: etcdUsername: etcdPassword: version:false kubeSubnetMgr:false " +
      "kubeApiUrl: kubeAnnotationPrefix:flannel.alpha.coreos.com kubeConfigFile: iface:[] ifaceRegex:[] " +
      "ipMasq:false ipMasqRandomFullyDisable:false ifaceCanReach: subnetFile:/run/flannel/subnet.env publicIP: " +
      "publicIPv6: subnetLeaseRenewMargin:60 healthzIP:0.0.0.0 healthzPort:0 iptablesResyncSeconds:5 " +
      "iptablesForwardRules:true blackholeRoute:false netConfPath:/etc/kube-flannel/net-conf.json " +
      "setNodeNetworkUnavailable:true logFormat:klog}",
  );
  const line = formatOptions(run(["--etcd-password=s3cret", "--iface=eth0", "--iface=10.0.0.1"]).options);
  assert.ok(line.includes(" etcdPassword:<redacted> "));
  assert.ok(!line.includes("s3cret"));
  assert.ok(line.includes(" iface:[eth0 10.0.0.1] "));
});

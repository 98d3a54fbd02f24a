/**
 * A throwaway single-member etcd for tests: Debian's `/usr/bin/etcd` on 127.0.0.1, free random
 * ports, a temp directory, optionally TLS with client-certificate authentication.
 *
 * ```ts ignore
 * const skip = etcdAvailable();
 * Deno.test({ name: "…", ignore: skip !== undefined }, async () => {
 *   await using etcd = await startEtcd();
 *   // etcd.endpoint is "http://127.0.0.1:<port>"
 * });
 * ```
 *
 * @module
 */

/** The etcd binary the harness runs. */
export const ETCD_BIN = "/usr/bin/etcd";
/** The etcdctl binary {@linkcode EtcdHandle.etcdctl} runs. */
export const ETCDCTL_BIN = "/usr/bin/etcdctl";
const OPENSSL_BIN = "/usr/bin/openssl";
const SETPRIV_BIN = "/usr/bin/setpriv";
const CURL_BIN = "/usr/bin/curl";

/** How long etcd may take to become healthy before {@linkcode startEtcd} gives up. */
const READY_DEADLINE_MS = 20_000;
/** Poll interval while waiting for health. */
const POLL_MS = 15;
/** How long a stopped etcd may take to exit on SIGTERM before it is killed. */
const STOP_DEADLINE_MS = 5_000;

/** TLS files of a TLS-mode etcd; the client certificate is signed by the same CA. */
export interface EtcdTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** A running (or stopped) test etcd. */
export interface EtcdHandle {
  /** The client URL, `http://127.0.0.1:<port>` (`https://` in TLS mode). */
  endpoint: string;
  dataDir: string;
  /** Client certificate, key and CA, in TLS mode. */
  tls: EtcdTlsFiles | undefined;
  /** Milliseconds the last (re)start took until etcd was healthy. */
  readonly startMs: number;
  /** Stops etcd with SIGTERM (SIGKILL after 5 s), keeping its data for {@linkcode restart}. */
  stop(): Promise<void>;
  /** Stops etcd if running, then starts it again on the same ports and data, and waits until healthy. */
  restart(): Promise<void>;
  /** Kills etcd with SIGKILL, keeping its data. */
  kill(): Promise<void>;
  /** Runs etcdctl against this etcd; returns stdout, throws with stderr on failure. */
  etcdctl(args: string[], opts?: { user?: string }): Promise<string>;
  /** Stops etcd and deletes the temp directory. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of {@linkcode startEtcd}. */
export interface StartEtcdOptions {
  /** Serve HTTPS and require client certificates signed by a generated CA. */
  tls?: boolean;
  /** More etcd flags. */
  args?: string[];
  /**
   * A command that etcd and etcdctl run under, e.g. `["ip", "netns", "exec", "<ns>"]`. Health is then
   * checked with `curl` under the same prefix, since this process may not reach etcd's address.
   */
  prefix?: string[];
  /** The address etcd listens on and advertises; default `127.0.0.1`. */
  host?: string;
  /** The client port; default a free one (with `prefix`, 2379). */
  clientPort?: number;
  /** The peer port; default a free one (with `prefix`, 2380). */
  peerPort?: number;
  /** Where etcd's temp directory is made; default the system temp dir. */
  dir?: string;
}

/**
 * Why etcd tests cannot run here, or undefined when they can. With `tls`, also needs `openssl`.
 */
export function etcdAvailable(opts: { tls?: boolean } = {}): string | undefined {
  const bins = [ETCD_BIN, ETCDCTL_BIN, ...(opts.tls ? [OPENSSL_BIN] : [])];
  for (const bin of bins) {
    try {
      Deno.statSync(bin);
    } catch {
      return `${bin} is not installed`;
    }
  }
  return undefined;
}

/** Starts etcd and waits until it is healthy. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdHandle> {
  const root = await Deno.makeTempDir({ prefix: "flannel-etcd-", ...(opts.dir ? { dir: opts.dir } : {}) });
  try {
    const tls = opts.tls ? await makeCerts(root) : undefined;
    // A port picked free can be taken before etcd binds it; pick again then.
    for (let tries = 1;; tries++) {
      await Deno.remove(`${root}/data`, { recursive: true }).catch(() => {});
      const inNs = opts.prefix !== undefined && opts.prefix.length > 0;
      const handle = new Etcd(
        root,
        {
          clientPort: opts.clientPort ?? (inNs ? 2379 : await freePort()),
          peerPort: opts.peerPort ?? (inNs ? 2380 : await freePort()),
          host: opts.host ?? "127.0.0.1",
          prefix: opts.prefix ?? [],
        },
        tls,
        opts.args ?? [],
      );
      try {
        await handle.start();
        return handle;
      } catch (err) {
        if (tries >= 3 || !(err instanceof PortTakenError) || opts.clientPort || opts.prefix?.length) {
          throw err;
        }
      }
    }
  } catch (err) {
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw err;
  }
}

class PortTakenError extends Error {}

interface Listen {
  clientPort: number;
  peerPort: number;
  host: string;
  prefix: string[];
}

class Etcd implements EtcdHandle {
  readonly endpoint: string;
  readonly dataDir: string;
  readonly tls: EtcdTlsFiles | undefined;
  startMs = 0;
  readonly #root: string;
  readonly #args: string[];
  readonly #logFile: string;
  readonly #prefix: string[];
  #child: Deno.ChildProcess | undefined;

  constructor(root: string, listen: Listen, tls: Certs | undefined, extra: string[]) {
    const { clientPort, peerPort, host } = listen;
    this.#root = root;
    this.#prefix = listen.prefix;
    this.dataDir = `${root}/data`;
    this.#logFile = `${root}/etcd.log`;
    this.tls = tls?.client;
    const scheme = tls ? "https" : "http";
    const h = host.includes(":") ? `[${host}]` : host;
    this.endpoint = `${scheme}://${h}:${clientPort}`;
    const peer = `http://${h}:${peerPort}`;
    this.#args = [
      "--name=default",
      `--data-dir=${this.dataDir}`,
      `--listen-client-urls=${this.endpoint}`,
      `--advertise-client-urls=${this.endpoint}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=default=${peer}`,
      // A single member never loses its election; short ticks make start-up fast (about 50 ms
      // instead of 0.5-2 s) and etcd's minimum lease TTL 1 s.
      "--heartbeat-interval=10",
      "--election-timeout=100",
      "--logger=zap",
      `--log-outputs=${this.#logFile}`,
      ...(tls
        ? [
          `--cert-file=${tls.server.certFile}`,
          `--key-file=${tls.server.keyFile}`,
          `--trusted-ca-file=${tls.client.caFile}`,
          "--client-cert-auth",
        ]
        : []),
      ...extra,
    ];
  }

  async start(): Promise<void> {
    const t0 = performance.now();
    // With setpriv, etcd dies with the test process even when that is killed, instead of
    // lingering on its ports. The signal fires when the spawning thread exits: Deno spawns from
    // the JS thread, which lives as long as the process.
    const argv = [...this.#prefix, ETCD_BIN, ...this.#args];
    const [cmd, args] = hasSetpriv()
      ? [SETPRIV_BIN, ["--pdeathsig", "SIGKILL", ...argv]]
      : [argv[0]!, argv.slice(1)];
    const child = new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#child = child;
    let exited = false;
    const status = child.status.then((s) => (exited = true, s));
    using client = this.tls
      ? Deno.createHttpClient({
        caCerts: [await Deno.readTextFile(this.tls.caFile)],
        cert: await Deno.readTextFile(this.tls.certFile),
        key: await Deno.readTextFile(this.tls.keyFile),
      })
      : undefined;
    const deadline = Date.now() + READY_DEADLINE_MS;
    while (!exited) {
      if (await this.#healthy(client)) {
        this.startMs = performance.now() - t0;
        return;
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(
          `etcd did not become healthy within ${READY_DEADLINE_MS} ms: ${await this.#logTail()}`,
        );
      }
      await Promise.race([status, new Promise((r) => setTimeout(r, POLL_MS))]);
    }
    this.#child = undefined;
    const log = await this.#logTail();
    const msg = `etcd exited with code ${(await status).code} during start-up: ${log}`;
    throw /address already in use/.test(log) ? new PortTakenError(msg) : new Error(msg);
  }

  async #healthy(client: Deno.HttpClient | undefined): Promise<boolean> {
    if (this.#prefix.length > 0) return await this.#healthyVia();
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 1_000);
    try {
      const res = await fetch(`${this.endpoint}/health`, {
        signal: ac.signal,
        ...(client ? { client } : {}),
      });
      const body = await res.text();
      return res.ok && body.includes('"health":"true"');
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The health check through curl under the prefix (another network namespace). */
  async #healthyVia(): Promise<boolean> {
    const tls = this.tls
      ? ["--cacert", this.tls.caFile, "--cert", this.tls.certFile, "--key", this.tls.keyFile]
      : [];
    const argv = [...this.#prefix, CURL_BIN, "-s", "-m", "1", ...tls, `${this.endpoint}/health`];
    const out = await new Deno.Command(argv[0]!, { args: argv.slice(1), stdin: "null", stderr: "null" })
      .output().catch(() => undefined);
    return out !== undefined && out.success &&
      new TextDecoder().decode(out.stdout).includes('"health":"true"');
  }

  async #logTail(): Promise<string> {
    const text = await Deno.readTextFile(this.#logFile).catch(() => "");
    const lines = text.trim().split("\n").slice(-3);
    return lines.map((l) => {
      try {
        const j = JSON.parse(l);
        return `${j.msg}${j.error ? `: ${j.error}` : ""}`;
      } catch {
        return l;
      }
    }).join(" | ") || "(no log)";
  }

  async #signal(sig: Deno.Signal, deadlineMs: number): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill(sig);
    } catch {
      // Already exited.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), deadlineMs));
    try {
      if (await Promise.race([child.status, late]) === "late") {
        child.kill("SIGKILL");
        await child.status;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  stop(): Promise<void> {
    return this.#signal("SIGTERM", STOP_DEADLINE_MS);
  }

  kill(): Promise<void> {
    return this.#signal("SIGKILL", STOP_DEADLINE_MS);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async etcdctl(args: string[], opts: { user?: string } = {}): Promise<string> {
    const flags = [`--endpoints=${this.endpoint}`];
    if (this.tls) {
      flags.push(`--cacert=${this.tls.caFile}`, `--cert=${this.tls.certFile}`, `--key=${this.tls.keyFile}`);
    }
    if (opts.user !== undefined) flags.push(`--user=${opts.user}`);
    const argv = [...this.#prefix, ETCDCTL_BIN, ...flags, ...args];
    const out = await new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      env: { ETCDCTL_API: "3" },
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    if (!out.success) {
      throw new Error(`etcdctl ${args.join(" ")} failed: ${dec.decode(out.stderr).trim().split("\n")[0]}`);
    }
    return dec.decode(out.stdout);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.#root, { recursive: true }).catch(() => {});
  }
}

function hasSetpriv(): boolean {
  try {
    return Deno.statSync(SETPRIV_BIN).isFile;
  } catch {
    return false;
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await Promise.resolve();
  return listener.addr.port;
}

interface Certs {
  client: EtcdTlsFiles;
  server: { certFile: string; keyFile: string };
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
async function makeCerts(dir: string): Promise<Certs> {
  const ca = `${dir}/ca.pem`;
  const caKey = `${dir}/ca-key.pem`;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    caKey,
    "-out",
    ca,
    "-days",
    "2",
    "-subj",
    "/CN=flannel-test-ca",
  ]);
  const leaf = async (name: string, ext: string): Promise<{ certFile: string; keyFile: string }> => {
    const certFile = `${dir}/${name}.pem`;
    const keyFile = `${dir}/${name}-key.pem`;
    const extFile = `${dir}/${name}.ext`;
    await Deno.writeTextFile(extFile, ext);
    await openssl(["req", ...ec, "-keyout", keyFile, "-out", `${dir}/${name}.csr`, "-subj", `/CN=${name}`]);
    await openssl([
      "x509",
      "-req",
      "-in",
      `${dir}/${name}.csr`,
      "-CA",
      ca,
      "-CAkey",
      caKey,
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      extFile,
      "-out",
      certFile,
    ]);
    return { certFile, keyFile };
  };
  // etcd's gateway dials etcd's own gRPC port with the server certificate, so it also needs clientAuth.
  const server = await leaf(
    "server",
    "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n",
  );
  const client = await leaf("client", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
  return { server, client: { caFile: ca, ...client } };
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command(OPENSSL_BIN, { args, stdin: "null", stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n")[0];
    throw new Error(`openssl ${args[0]} failed: ${err}`);
  }
}

/**
 * Where the Kubernetes API is and how to authenticate, as client-go's `BuildConfigFromFlags`
 * decides it (§4.1 of the behaviour reference):
 * - neither `--kube-api-url` nor `--kubeconfig-file`: in-cluster, from `KUBERNETES_SERVICE_HOST`,
 *   `KUBERNETES_SERVICE_PORT` and the service-account token and CA;
 * - `--kubeconfig-file`: its current context (cluster server and CA, user token, token file,
 *   client certificate or basic auth), with the server replaced by `--kube-api-url` when given;
 * - `--kube-api-url` alone: that server, no credentials.
 *
 * Files and TLS go through an injected {@linkcode KubeRuntime} (`src/runtime/kube_http.ts` on
 * Deno), so this module is plain TypeScript.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import type { Logger } from "../../log/logger.ts";
import type { Clock } from "../../util/clock.ts";
import type { AuthSource } from "./client.ts";

/** PEM texts for one TLS client; absent fields mean "use the defaults". */
export interface KubeTls {
  /** CA bundle trusted in addition to the system roots. */
  caPem?: string;
  /** Client certificate and key; used only together. */
  certPem?: string;
  keyPem?: string;
}

/** A `fetch` that may own a connection pool; `close()` releases it. */
export type KubeFetch = typeof fetch & { close(): void };

/** File reading and TLS-capable `fetch` creation, the runtime-specific part. */
export interface KubeRuntime {
  readTextFile(path: string): Promise<string>;
  createFetch(tls: KubeTls): KubeFetch;
}

/** Where the service account's files are mounted in every pod. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** client-go re-reads token files at most this often (bound tokens rotate). */
export const TOKEN_REREAD_MS = 60_000;

/** Inputs of {@linkcode loadKubeConfig}. */
export interface KubeConfigInput {
  /** `--kube-api-url`. */
  apiUrl: string;
  /** `--kubeconfig-file`. */
  kubeconfigPath: string;
  /** The process environment (only the in-cluster variables are read). */
  env: Record<string, string | undefined>;
  runtime: KubeRuntime;
  log: Logger;
  clock: Clock;
  /** Default {@linkcode SERVICE_ACCOUNT_DIR}. */
  serviceAccountDir?: string;
}

/** What a {@linkcode KubeClient} needs. */
export interface KubeClientConfig {
  server: string;
  auth?: AuthSource;
  fetch: KubeFetch;
  /** Where the settings came from, for the log. */
  source: string;
}

/** A configuration that cannot be used; the message starts with upstream's prefix. */
export class KubeConfigError extends Error {
  override name = "KubeConfigError";
  constructor(detail: string, options?: ErrorOptions) {
    super(`fail to create kubernetes config: ${detail}`, options);
  }
}

/**
 * Builds the client configuration.
 *
 * @throws {KubeConfigError} naming the file, entry and field, and what to do.
 */
export async function loadKubeConfig(input: KubeConfigInput): Promise<KubeClientConfig> {
  if (!input.apiUrl && !input.kubeconfigPath) return await inCluster(input);
  if (!input.kubeconfigPath) {
    return {
      server: checkServer(input.apiUrl, "--kube-api-url"),
      fetch: input.runtime.createFetch({}),
      source: "--kube-api-url",
    };
  }
  return await fromKubeconfig(input);
}

async function inCluster(input: KubeConfigInput): Promise<KubeClientConfig> {
  const host = input.env.KUBERNETES_SERVICE_HOST;
  const port = input.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new KubeConfigError(
      "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be " +
        "defined; outside a pod pass --kubeconfig-file or --kube-api-url",
    );
  }
  const dir = input.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const tokenPath = `${dir}/token`;
  const first = await readOrThrow(input.runtime, tokenPath, "the service-account token");
  const auth = tokenFileAuth(tokenPath, first.trim(), input);
  const tls: KubeTls = {};
  try {
    tls.caPem = await input.runtime.readTextFile(`${dir}/ca.crt`);
  } catch (e) {
    input.log.error(`Expected to load root CA config from ${dir}/ca.crt, but got err: ${oneLine(e)}`);
  }
  const server = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return {
    server,
    auth,
    fetch: createFetch(input.runtime, tls, "the service-account CA"),
    source: "in-cluster",
  };
}

type Named = Record<string, unknown>;

async function fromKubeconfig(input: KubeConfigInput): Promise<KubeClientConfig> {
  const path = input.kubeconfigPath;
  const what = `kubeconfig ${JSON.stringify(path)}`;
  const text = await readOrThrow(input.runtime, path, "--kubeconfig-file");
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new KubeConfigError(`${what} is not valid YAML: ${oneLine(e)}`, { cause: e });
  }
  const cfg = isRecord(doc) ? doc : {};
  const base = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
  const resolve = (p: string) => (p.startsWith("/") ? p : `${base}${p}`);
  const contextName = typeof cfg["current-context"] === "string" ? cfg["current-context"] : "";
  if (!contextName) {
    if (input.apiUrl) {
      return {
        server: checkServer(input.apiUrl, "--kube-api-url"),
        fetch: input.runtime.createFetch({}),
        source: `--kube-api-url (${what} has no current-context)`,
      };
    }
    throw new KubeConfigError(
      `${what} has no current-context: set one with kubectl config use-context <name>`,
    );
  }
  const context = entry(cfg, "contexts", "context", contextName, what);
  const clusterName = str(context.cluster);
  const userName = str(context.user);
  const cluster = clusterName ? entry(cfg, "clusters", "cluster", clusterName, what) : {};
  const user = userName ? entry(cfg, "users", "user", userName, what) : {};
  const where = `${what} cluster ${JSON.stringify(clusterName)}`;
  const server = input.apiUrl
    ? checkServer(input.apiUrl, "--kube-api-url")
    : checkServer(str(cluster.server), `${where} server`);

  const tls: KubeTls = {};
  const ca = await pem(input.runtime, cluster, "certificate-authority", resolve, where);
  if (ca) tls.caPem = ca;
  if (cluster["insecure-skip-tls-verify"] === true) {
    if (ca) {
      throw new KubeConfigError(
        `${where}: specifying a root certificates file with the insecure flag is not allowed; remove one of ` +
          `certificate-authority(-data) and insecure-skip-tls-verify`,
      );
    }
    input.log.warn(
      `${where} sets insecure-skip-tls-verify, but this runtime verifies server certificates unless deno runs ` +
        `with --unsafely-ignore-certificate-errors; prefer certificate-authority-data`,
    );
  }
  const uwhere = `${what} user ${JSON.stringify(userName)}`;
  for (const unsupported of ["exec", "auth-provider"]) {
    if (user[unsupported] !== undefined && user[unsupported] !== null) {
      throw new KubeConfigError(
        `${uwhere} uses ${unsupported} credentials, which flanneld does not support: use token, tokenFile or ` +
          `client-certificate/client-key`,
      );
    }
  }
  const cert = await pem(input.runtime, user, "client-certificate", resolve, uwhere);
  const key = await pem(input.runtime, user, "client-key", resolve, uwhere);
  if (Boolean(cert) !== Boolean(key)) {
    throw new KubeConfigError(
      `${uwhere} has a client ${cert ? "certificate without a key" : "key without a certificate"}: give both`,
    );
  }
  if (cert && key) {
    tls.certPem = cert;
    tls.keyPem = key;
  }
  let auth: AuthSource | undefined;
  const token = str(user.token);
  const tokenFile = str(user.tokenFile);
  if (tokenFile) {
    const path = resolve(tokenFile);
    let first = token;
    try {
      first = (await input.runtime.readTextFile(path)).trim();
    } catch (e) {
      if (!token) {
        throw new KubeConfigError(`${uwhere}: cannot read tokenFile ${JSON.stringify(path)}: ${oneLine(e)}`, {
          cause: e,
        });
      }
    }
    auth = tokenFileAuth(path, first, input);
  } else if (token) {
    auth = staticAuth(`Bearer ${token}`);
  } else if (str(user.username)) {
    auth = staticAuth(`Basic ${btoa(`${str(user.username)}:${str(user.password)}`)}`);
  }
  const result: KubeClientConfig = {
    server,
    fetch: createFetch(input.runtime, tls, `${where} / ${uwhere}`),
    source: `${what} context ${JSON.stringify(contextName)}`,
  };
  if (auth) result.auth = auth;
  return result;
}

/** The inner object of the named entry of a kubeconfig list (`clusters[].cluster`, …). */
function entry(
  cfg: Record<string, unknown>,
  list: string,
  field: string,
  name: string,
  what: string,
): Record<string, unknown> {
  const items = Array.isArray(cfg[list]) ? cfg[list] as Named[] : [];
  const found = items.find((i) => isRecord(i) && i.name === name);
  if (!found) {
    const known = items.map((i) => (isRecord(i) ? String(i.name) : "?")).join(", ") || "none";
    throw new KubeConfigError(
      `${what} has no ${field} named ${JSON.stringify(name)} (${list}: ${known}); fix the kubeconfig`,
    );
  }
  return isRecord(found[field]) ? found[field] as Record<string, unknown> : {};
}

/** `<field>-data` (base64 PEM) or `<field>` (a file, relative to the kubeconfig). */
async function pem(
  runtime: KubeRuntime,
  obj: Record<string, unknown>,
  field: string,
  resolve: (p: string) => string,
  where: string,
): Promise<string | undefined> {
  const data = str(obj[`${field}-data`]);
  if (data) {
    try {
      return new TextDecoder().decode(
        Uint8Array.from(atob(data.replace(/\s+/g, "")), (c) => c.charCodeAt(0)),
      );
    } catch (e) {
      throw new KubeConfigError(`${where}: ${field}-data is not base64: ${oneLine(e)}`, { cause: e });
    }
  }
  const file = str(obj[field]);
  if (!file) return undefined;
  return await readOrThrow(runtime, resolve(file), `${where} ${field}`);
}

function staticAuth(header: string): AuthSource {
  return { authorization: () => Promise.resolve(header) };
}

/** A token file re-read every minute, and at once after a 401; the last good read is kept. */
function tokenFileAuth(path: string, first: string, input: KubeConfigInput): AuthSource {
  let token = first;
  let readAt = input.clock.now();
  return {
    async authorization(refresh) {
      if (refresh || input.clock.now() - readAt >= TOKEN_REREAD_MS) {
        readAt = input.clock.now();
        try {
          token = (await input.runtime.readTextFile(path)).trim();
        } catch (e) {
          input.log.warn(`Cannot re-read token file ${path}, keeping the last token: ${oneLine(e)}`);
        }
      }
      return token ? `Bearer ${token}` : undefined;
    },
  };
}

function createFetch(runtime: KubeRuntime, tls: KubeTls, what: string): KubeFetch {
  try {
    return runtime.createFetch(tls);
  } catch (e) {
    throw new KubeConfigError(`cannot set up TLS from ${what}: ${oneLine(e)}`, { cause: e });
  }
}

function checkServer(url: string, what: string): string {
  let u: URL;
  try {
    u = new URL(url.includes("://") ? url : `https://${url}`);
  } catch {
    throw new KubeConfigError(`${what} ${JSON.stringify(url)} is not a URL: want https://host:port`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new KubeConfigError(
      `${what} ${JSON.stringify(url)} has scheme ${u.protocol}: want https:// or http://`,
    );
  }
  return u.href.replace(/\/+$/, "");
}

async function readOrThrow(runtime: KubeRuntime, path: string, what: string): Promise<string> {
  try {
    return await runtime.readTextFile(path);
  } catch (e) {
    throw new KubeConfigError(`cannot read ${what} ${JSON.stringify(path)}: ${oneLine(e)}`, { cause: e });
  }
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
}

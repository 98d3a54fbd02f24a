/**
 * `fetch` with etcd's TLS options, for Deno. The only module that reads certificate files and
 * creates `Deno.HttpClient`s; clients such as the etcd one take the result as an injected `fetch`.
 *
 * @module
 */

/** The TLS files flanneld takes for etcd (`--etcd-certfile`, `--etcd-keyfile`, `--etcd-cafile`). */
export interface FetchTlsOptions {
  /** PEM client certificate (chain). Used only together with `keyFile`. */
  certFile?: string | undefined;
  /** PEM private key of the client certificate. Used only together with `certFile`. */
  keyFile?: string | undefined;
  /** PEM CA bundle added to the default roots to verify the server. */
  caFile?: string | undefined;
}

/** A `fetch` that may own an HTTP client; `close()` releases it (a no-op for plain `fetch`). */
export type ClosableFetch = typeof fetch & { close(): void; [Symbol.dispose](): void };

/**
 * A `fetch` that presents a client certificate when both `certFile` and `keyFile` are given
 * (like upstream flannel, one of them alone is ignored), and trusts `caFile` in addition to the
 * default roots. With no files it is plain `fetch`. Files are read now, synchronously, so a bad
 * path fails at start-up with a message naming the flag.
 *
 * @example
 * ```ts ignore
 * import { createFetch } from "./http.ts";
 * using f = createFetch({ certFile: "client.pem", keyFile: "client-key.pem", caFile: "ca.pem" });
 * const res = await f("https://127.0.0.1:2379/health");
 * ```
 */
export function createFetch(opts: FetchTlsOptions): ClosableFetch {
  const clientCert = Boolean(opts.certFile) && Boolean(opts.keyFile);
  const caFile = opts.caFile || undefined;
  if (!clientCert && caFile === undefined) return withClose((input, init) => fetch(input, init), () => {});

  const caCerts = caFile === undefined ? [] : [readPem(caFile, "--etcd-cafile")];
  const certKey = clientCert
    ? { cert: readPem(opts.certFile!, "--etcd-certfile"), key: readPem(opts.keyFile!, "--etcd-keyfile") }
    : {};
  let client: Deno.HttpClient;
  try {
    client = Deno.createHttpClient({ caCerts, ...certKey });
  } catch (err) {
    const files = [opts.certFile, opts.keyFile, caFile].filter((f) => f).join(", ");
    throw new TypeError(`Cannot set up TLS for etcd from ${files}: ${oneLine(err)}`, { cause: err });
  }
  let closed = false;
  return withClose((input, init) => fetch(input, { ...init, client }), () => {
    if (!closed) client.close();
    closed = true;
  });
}

function withClose(f: typeof fetch, close: () => void): ClosableFetch {
  return Object.assign(f, { close, [Symbol.dispose]: close });
}

function readPem(path: string, flag: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw new TypeError(`Cannot read ${flag} ${JSON.stringify(path)}: ${oneLine(err)}`, { cause: err });
  }
  if (!text.includes("-----BEGIN ")) {
    throw new TypeError(`Cannot use ${flag} ${JSON.stringify(path)}: not a PEM file`);
  }
  return text;
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0]!;
}

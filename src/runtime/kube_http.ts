/**
 * The Kubernetes client's runtime edge on Deno: reading credential files, and a `fetch` with the
 * cluster's CA and client certificate (`Deno.createHttpClient`). The only kube module that touches
 * `Deno`; `src/lease/kube/config.ts` takes it as a {@linkcode KubeRuntime}.
 *
 * @module
 */
import type { KubeFetch, KubeRuntime, KubeTls } from "../lease/kube/config.ts";

/**
 * A `fetch` for one cluster: plain `fetch` when no TLS setting is given, otherwise one backed by
 * its own HTTP client that trusts `caPem` in addition to the system roots and presents the client
 * certificate. `close()` releases the client.
 *
 * @example
 * ```ts ignore
 * import { createKubeFetch } from "./kube_http.ts";
 * const f = createKubeFetch({ caPem: await Deno.readTextFile("ca.crt") });
 * await f("https://10.96.0.1/version");
 * f.close();
 * ```
 */
export function createKubeFetch(tls: KubeTls): KubeFetch {
  const certKey = tls.certPem && tls.keyPem ? { cert: tls.certPem, key: tls.keyPem } : undefined;
  if (!tls.caPem && !certKey) {
    return Object.assign((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init), {
      close() {},
    });
  }
  const client = Deno.createHttpClient({ caCerts: tls.caPem ? [tls.caPem] : [], ...certKey });
  let closed = false;
  return Object.assign(
    (input: RequestInfo | URL, init?: RequestInit) => fetch(input, { ...init, client }),
    {
      close() {
        if (!closed) client.close();
        closed = true;
      },
    },
  );
}

/** {@linkcode KubeRuntime} on Deno. */
export const denoKubeRuntime: KubeRuntime = {
  readTextFile: (path) => Deno.readTextFile(path),
  createFetch: createKubeFetch,
};

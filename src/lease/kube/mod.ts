/**
 * The Kubernetes subnet manager and its parts: the API client, client configuration (in-cluster or
 * kubeconfig), annotation names, node ↔ lease conversion and the node informer.
 *
 * @example
 * ```ts ignore
 * import { createKubeManager } from "./mod.ts";
 * import { denoKubeRuntime } from "../../runtime/kube_http.ts";
 * const manager = await createKubeManager(options, Deno.env.toObject(), log, systemClock, denoKubeRuntime);
 * ```
 *
 * @module
 */
import type { Options } from "../../cli/flags.ts";
import { parseNetworkConfig } from "../../config/network_config.ts";
import type { Logger } from "../../log/logger.ts";
import type { Clock } from "../../util/clock.ts";
import { KubeApiError, KubeClient, type KubeClientOptions } from "./client.ts";
import { type KubeRuntime, loadKubeConfig } from "./config.ts";
import { KubeSubnetManager } from "./manager.ts";
import { annotationNames } from "./annotations.ts";

export {
  type AnnotationNames,
  annotationNames,
  AnnotationPrefixError,
  normalizeAnnotationPrefix,
} from "./annotations.ts";
export {
  type AuthSource,
  KubeApiError,
  KubeClient,
  type KubeClientOptions,
  LIST_PAGE_SIZE,
  type WatchOptions,
} from "./client.ts";
export {
  type KubeClientConfig,
  KubeConfigError,
  type KubeConfigInput,
  type KubeFetch,
  type KubeRuntime,
  type KubeTls,
  loadKubeConfig,
  SERVICE_ACCOUNT_DIR,
} from "./config.ts";
export { NodeInformer, type NodeInformerOptions, NodeSubscription } from "./informer.ts";
export {
  ACQUIRE_POLL_MS,
  KubeSubnetManager,
  type KubeSubnetManagerOptions,
  type StoredPublicIPs,
} from "./manager.ts";
export {
  annotationChanges,
  type Families,
  isFlannelNode,
  KUBE_LEASE_MS,
  networkUnavailablePatch,
  NodeLeaseError,
  nodeToLease,
  type OwnLeasePlan,
  planOwnLease,
  podCidrs,
  sameLease,
  storedMacs,
} from "./node_lease.ts";
export type {
  KubeList,
  KubeNode,
  KubePod,
  KubeStatus,
  NodeCondition,
  ObjectMeta,
  WatchEvent,
} from "./types.ts";

/** A start-up failure of the kube manager; the message is upstream's, plus the fix. */
export class KubeStartError extends Error {
  override name = "KubeStartError";
}

/**
 * This node's name: `NODE_NAME`, else the `spec.nodeName` of pod `POD_NAMESPACE/POD_NAME`.
 *
 * @throws {KubeStartError} with upstream's messages.
 */
export async function resolveNodeName(
  env: Record<string, string | undefined>,
  client: Pick<KubeClient, "getPod">,
  signal?: AbortSignal,
): Promise<string> {
  if (env.NODE_NAME) return env.NODE_NAME;
  const name = env.POD_NAME;
  const ns = env.POD_NAMESPACE;
  if (!name || !ns) {
    throw new KubeStartError(
      "env variables POD_NAME and POD_NAMESPACE must be set (or NODE_NAME); in a DaemonSet set them from " +
        "the downward API (fieldRef metadata.name and metadata.namespace)",
    );
  }
  let pod;
  try {
    pod = await client.getPod(ns, name, signal);
  } catch (e) {
    const hint = e instanceof KubeApiError && e.status === 403
      ? `; grant "get" on "pods" to flannel's service account`
      : "";
    throw new KubeStartError(
      `error retrieving pod spec for '${ns}/${name}': ${(e as Error).message}${hint}`,
      {
        cause: e,
      },
    );
  }
  const node = pod.spec?.nodeName;
  if (!node) throw new KubeStartError(`node name not present in pod spec '${ns}/${name}'`);
  return node;
}

/**
 * Creates the kube subnet manager from flanneld's options: client configuration, node identity,
 * net-conf.json (read now, parsed without validation). The node informer starts on first use.
 * `close()` stops it and releases the HTTP client.
 *
 * @throws {KubeConfigError | KubeStartError | AnnotationPrefixError} naming what to fix.
 */
export async function createKubeManager(
  options: Pick<
    Options,
    | "kubeApiUrl"
    | "kubeconfigFile"
    | "kubeAnnotationPrefix"
    | "netConfigPath"
    | "setNodeNetworkUnavailable"
  >,
  env: Record<string, string | undefined>,
  log: Logger,
  clock: Clock,
  runtime: KubeRuntime,
  /** Told of every API request, answered or not (metrics). */
  observe?: KubeClientOptions["observe"],
): Promise<KubeSubnetManager> {
  annotationNames(options.kubeAnnotationPrefix); // refuse a bad prefix before any network call
  const cfg = await loadKubeConfig({
    apiUrl: options.kubeApiUrl,
    kubeconfigPath: options.kubeconfigFile,
    env,
    runtime,
    log,
    clock,
  });
  try {
    const client = new KubeClient({ server: cfg.server, auth: cfg.auth, fetch: cfg.fetch, observe });
    log.info(`Kubernetes API at ${cfg.server} (${cfg.source})`);
    const nodeName = await resolveNodeName(env, client);
    let text: string;
    try {
      text = await runtime.readTextFile(options.netConfigPath);
    } catch (e) {
      throw new KubeStartError(
        `failed to read net conf: ${options.netConfigPath}: ${(e as Error).message.split("\n")[0]}; ` +
          `mount net-conf.json there or pass --net-config-path`,
        { cause: e },
      );
    }
    let config;
    try {
      config = parseNetworkConfig(text, { source: options.netConfigPath });
    } catch (e) {
      throw new KubeStartError(`error parsing subnet config: ${(e as Error).message}`, { cause: e });
    }
    return new KubeSubnetManager({
      client,
      nodeName,
      config,
      annotationPrefix: options.kubeAnnotationPrefix,
      setNodeNetworkUnavailable: options.setNodeNetworkUnavailable,
      log,
      clock,
      onClose: () => cfg.fetch.close(),
    });
  } catch (e) {
    cfg.fetch.close();
    throw e;
  }
}

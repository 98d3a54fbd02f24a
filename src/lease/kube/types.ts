/**
 * The few Kubernetes API shapes flannel reads and writes, as JSON: Node, Pod, lists, watch events
 * and `Status`. Only the fields flannel uses are typed; everything else passes through untouched.
 *
 * @module
 */

/** `metav1.ObjectMeta`, the parts flannel uses. */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
}

/** `v1.NodeCondition`. */
export interface NodeCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
}

/** `v1.Node`: metadata, the pod CIDRs of its spec, and status conditions. */
export interface KubeNode {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: { podCIDR?: string; podCIDRs?: string[]; [k: string]: unknown };
  status?: { conditions?: NodeCondition[]; [k: string]: unknown };
}

/** `v1.Pod`, as far as node identity needs it. */
export interface KubePod {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: { nodeName?: string; [k: string]: unknown };
}

/** A list answer: the items and the resource version the list was read at. */
export interface KubeList<T> {
  apiVersion?: string;
  kind?: string;
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** `metav1.Status`, the body of every API error. */
export interface KubeStatus {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message: string;
  reason: string;
  details?: { name?: string; kind?: string; group?: string };
  code: number;
}

/** One watch event as the API server streams it, one JSON object per line. */
export type WatchEvent<T> =
  | { type: "ADDED" | "MODIFIED" | "DELETED"; object: T }
  /** Only `metadata.resourceVersion` of the object is meaningful. */
  | { type: "BOOKMARK"; object: T }
  | { type: "ERROR"; object: KubeStatus };

/**
 * Discovery documents of the fake API server (legacy, non-aggregated form), enough for `kubectl`
 * to map every kind in `deploy/kube-flannel.yml` to its resource (`kubectl create --dry-run=client`
 * and `kubectl get nodes` work against the fake), and `/version`.
 */

const RW = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const STATUS = ["get", "patch", "update"];

function res(name: string, kind: string, namespaced: boolean, shortNames?: string[]) {
  return {
    name,
    singularName: kind.toLowerCase(),
    namespaced,
    kind,
    verbs: RW,
    ...(shortNames ? { shortNames } : {}),
  };
}

function sub(name: string, kind: string, namespaced: boolean) {
  return { name, singularName: "", namespaced, kind, verbs: STATUS };
}

const GROUPS: Record<string, { group: string; version: string; resources: unknown[] }> = {
  "/api/v1": {
    group: "",
    version: "v1",
    resources: [
      res("nodes", "Node", false, ["no"]),
      sub("nodes/status", "Node", false),
      res("pods", "Pod", true, ["po"]),
      sub("pods/status", "Pod", true),
      res("namespaces", "Namespace", false, ["ns"]),
      res("configmaps", "ConfigMap", true, ["cm"]),
      res("serviceaccounts", "ServiceAccount", true, ["sa"]),
    ],
  },
  "/apis/apps/v1": {
    group: "apps",
    version: "v1",
    resources: [
      res("daemonsets", "DaemonSet", true, ["ds"]),
      res("deployments", "Deployment", true, ["deploy"]),
    ],
  },
  "/apis/rbac.authorization.k8s.io/v1": {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resources: [
      res("clusterroles", "ClusterRole", false),
      res("clusterrolebindings", "ClusterRoleBinding", false),
      res("roles", "Role", true),
      res("rolebindings", "RoleBinding", true),
    ],
  },
};

/** The discovery document at `path`, or undefined when `path` is not a discovery path. */
export function discovery(path: string, serverAddress: string): unknown {
  if (path === "/version") {
    return {
      major: "1",
      minor: "32",
      gitVersion: "v1.32.0-flannel-ts-fake",
      gitCommit: "0000000000000000000000000000000000000000",
      gitTreeState: "clean",
      buildDate: "2025-01-01T00:00:00Z",
      goVersion: "go1.23.0",
      compiler: "gc",
      platform: "linux/amd64",
    };
  }
  if (path === "/api") {
    return {
      kind: "APIVersions",
      versions: ["v1"],
      serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
    };
  }
  if (path === "/apis") {
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: Object.values(GROUPS).filter((g) => g.group !== "").map((g) => {
        const gv = { groupVersion: `${g.group}/${g.version}`, version: g.version };
        return { name: g.group, versions: [gv], preferredVersion: gv };
      }),
    };
  }
  const g = GROUPS[path];
  if (!g) return undefined;
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: g.group ? `${g.group}/${g.version}` : g.version,
    resources: g.resources,
  };
}

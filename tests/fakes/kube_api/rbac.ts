/**
 * Authorization and selectors of the fake API server: RBAC rules as a ClusterRole states them,
 * with the real server's 403 message, and field/label selectors.
 */
import { parseAllDocuments } from "yaml";
import { ApiError, type Resource, type Selector } from "./store.ts";

/** One RBAC rule (a ClusterRole's `rules[]` entry). */
export interface PolicyRule {
  apiGroups?: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** Throws the real server's 403 when `opts.rules` is set and no rule allows the request. */
export function authorize(
  opts: { rules?: PolicyRule[]; user?: string; token?: string },
  verb: string,
  resource: Resource,
  sub: string | undefined,
  ns: string | undefined,
  name?: string,
) {
  const rules = opts.rules;
  if (!rules) return;
  const full = sub ? `${resource}/${sub}` : resource;
  const ok = rules.some((r) =>
    (r.apiGroups ?? [""]).some((g) => g === "" || g === "*") &&
    r.resources.some((x) => x === full || x === "*") &&
    r.verbs.some((v) => v === verb || v === "*") &&
    (!r.resourceNames?.length || (name !== undefined && r.resourceNames.includes(name)))
  );
  if (ok) return;
  const user = opts.user ??
    (opts.token ? "system:serviceaccount:kube-flannel:flannel" : "system:anonymous");
  const scope = ns === undefined ? "at the cluster scope" : `in the namespace "${ns}"`;
  const what = name === undefined ? resource : `${resource} "${name}"`;
  throw new ApiError(
    403,
    "Forbidden",
    `${what} is forbidden: User "${user}" cannot ${verb} resource "${full}" in API group "" ${scope}`,
    { ...(name === undefined ? {} : { name }), kind: resource },
  );
}

/** The selectors of a list or watch request. */
export function selector(q: URLSearchParams): Selector {
  const parse = (s: string | null, what: string): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const part of (s ?? "").split(",").filter(Boolean)) {
      const m = part.match(/^([^=!]+)==?(.*)$/);
      if (!m) {
        throw new ApiError(
          400,
          "BadRequest",
          `unable to parse requirement: ${JSON.stringify(part)} in ${what}`,
        );
      }
      out[m[1]!.trim()] = m[2]!.trim();
    }
    return out;
  };
  const fields = parse(q.get("fieldSelector"), "fieldSelector");
  for (const k of Object.keys(fields)) {
    if (!["metadata.name", "metadata.namespace", "spec.nodeName"].includes(k)) {
      throw new ApiError(400, "BadRequest", `field label not supported: ${k}`);
    }
  }
  return { fields, labels: parse(q.get("labelSelector"), "labelSelector") };
}

/** The rules of the ClusterRole in a manifest (the first one, or the one named `name`). */
export function rulesFromManifest(text: string, name?: string): PolicyRule[] {
  for (const doc of parseAllDocuments(text)) {
    const obj = doc.toJS() as { kind?: string; metadata?: { name?: string }; rules?: PolicyRule[] } | null;
    if (obj?.kind === "ClusterRole" && (name === undefined || obj.metadata?.name === name)) {
      return obj.rules ?? [];
    }
  }
  throw new Error(`no ClusterRole${name ? ` named ${name}` : ""} in the manifest`);
}

/**
 * Patch semantics of the fake API server: JSON merge patch (RFC 7386) and the subset of
 * Kubernetes' strategic merge patch that node and pod objects need: maps merge, `null` deletes a
 * key, lists with a merge key (`status.conditions` and `status.addresses` by `type`, …) merge by
 * that key, other lists are replaced, and the `$patch: replace|delete` directives.
 */

type Json = unknown;
type Obj = Record<string, unknown>;

/** Lists that merge by a key, as the Kubernetes API types declare (`patchMergeKey`). */
export const MERGE_KEYS: Readonly<Record<string, string>> = {
  "status.conditions": "type",
  "status.addresses": "type",
  "status.images": "names",
  "status.volumesAttached": "name",
  "metadata.ownerReferences": "uid",
  "spec.containers": "name",
  "spec.initContainers": "name",
  "spec.volumes": "name",
  "spec.tolerations": "key",
};

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** RFC 7386: objects merge recursively, `null` deletes, everything else replaces. */
export function jsonMergePatch(target: Json, patch: Json): Json {
  if (!isObj(patch)) return patch;
  const out: Obj = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = jsonMergePatch(out[k], v);
  }
  return out;
}

/** Strategic merge patch of `target` with `patch` (`path` is the dotted field path so far). */
export function strategicMergePatch(target: Json, patch: Json, path = ""): Json {
  if (!isObj(patch)) return patch;
  if (patch.$patch === "replace") return strip(patch);
  const out: Obj = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith("$")) continue; // $patch, $retainKeys, $setElementOrder/…: not needed here
    const p = path ? `${path}.${k}` : k;
    if (v === null) {
      delete out[k];
    } else if (Array.isArray(v) && MERGE_KEYS[p]) {
      out[k] = mergeList(Array.isArray(out[k]) ? out[k] as Json[] : [], v, MERGE_KEYS[p]!, p);
    } else if (isObj(v)) {
      if (v.$patch === "delete") delete out[k];
      else out[k] = strategicMergePatch(out[k], v, p);
    } else {
      out[k] = v;
    }
  }
  return out;
}

function mergeList(list: Json[], patch: Json[], key: string, path: string): Json[] {
  const out = [...list];
  for (const item of patch) {
    if (!isObj(item)) {
      out.push(item);
      continue;
    }
    const idx = out.findIndex((e) => isObj(e) && e[key] === item[key]);
    if (item.$patch === "delete") {
      if (idx >= 0) out.splice(idx, 1);
    } else if (idx >= 0) {
      out[idx] = strategicMergePatch(out[idx], item, path);
    } else {
      out.push(strip(item));
    }
  }
  return out;
}

/** Drops directives and `null`s from a new value. */
function strip(v: Json): Json {
  if (Array.isArray(v)) return v.map(strip);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) {
    if (!k.startsWith("$") && x !== null) out[k] = strip(x);
  }
  return out;
}

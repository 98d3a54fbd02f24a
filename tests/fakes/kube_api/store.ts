/**
 * The fake API server's storage: nodes and pods with one global resourceVersion, an event history
 * of limited length (a watch from before it gets 410 Expired, as from the real watch cache), live
 * watchers, and the validation and errors the real API server gives for what flannel does.
 */
import { jsonMergePatch, strategicMergePatch } from "./merge.ts";

/** The resources the fake serves. */
export type Resource = "nodes" | "pods";

/** A stored object (Node or Pod JSON). */
export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

/** A watch event as streamed. */
export interface StoreEvent {
  type: "ADDED" | "MODIFIED" | "DELETED";
  resource: Resource;
  object: KObject;
  rv: number;
}

/** `metav1.Status` of a failure. */
export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure";
  message: string;
  reason: string;
  details?: Record<string, unknown>;
  code: number;
}

/** An API error with the Status body the real server sends. */
export class ApiError extends Error {
  readonly status: Status;
  constructor(code: number, reason: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.status = {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      ...(details ? { details } : {}),
      code,
    };
  }
}

const KIND: Record<Resource, string> = { nodes: "Node", pods: "Pod" };

/** `nodes "n1" not found`. */
export function notFound(resource: Resource, name: string): ApiError {
  return new ApiError(404, "NotFound", `${resource} "${name}" not found`, { name, kind: resource });
}

/** Selects objects by `metadata.name=`, `metadata.namespace=`, `spec.nodeName=` and labels. */
export interface Selector {
  fields?: Record<string, string>;
  labels?: Record<string, string>;
}

function matches(obj: KObject, sel: Selector | undefined): boolean {
  for (const [k, v] of Object.entries(sel?.fields ?? {})) {
    const have = k === "metadata.name"
      ? obj.metadata.name
      : k === "metadata.namespace"
      ? obj.metadata.namespace
      : (obj.spec?.nodeName as string | undefined);
    if ((have ?? "") !== v) return false;
  }
  for (const [k, v] of Object.entries(sel?.labels ?? {})) {
    if (obj.metadata.labels?.[k] !== v) return false;
  }
  return true;
}

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function badAnnotationKey(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (!DNS_SUBDOMAIN.test(prefix) || prefix.length > 253)) {
    return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, " +
      "'-' or '.', and must start and end with an alphanumeric character";
  }
  if (!QUALIFIED_NAME.test(name) || name.length > 63) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with " +
      "an alphanumeric character";
  }
  return undefined;
}

/** The objects, the resourceVersion counter, the history and the watchers. */
export class Store {
  #rv: number;
  #objects = new Map<string, { resource: Resource; obj: KObject }>();
  #history: StoreEvent[] = [];
  /** History holds every event after this version. */
  #historyStart: number;
  readonly #historyLimit: number;
  readonly #watchers = new Set<(ev: StoreEvent) => void>();
  /** Called after every change (persistence). */
  onChange: (() => void) | undefined;

  constructor(opts: { historyLimit?: number; startRv?: number } = {}) {
    this.#historyLimit = opts.historyLimit ?? 1000;
    this.#rv = opts.startRv ?? 1000;
    this.#historyStart = this.#rv;
  }

  /** The current resourceVersion. */
  get rv(): number {
    return this.#rv;
  }

  /** The oldest resourceVersion a watch can start from. */
  get historyStart(): number {
    return this.#historyStart;
  }

  /** Drops the history (an API server restart, or etcd compaction): older watches get 410. */
  compact(): void {
    this.#history = [];
    this.#historyStart = this.#rv;
  }

  /** A deep copy of one object. */
  get(resource: Resource, ns: string, name: string): KObject {
    const got = this.#objects.get(key(resource, ns, name));
    if (!got) throw notFound(resource, name);
    return clone(got.obj);
  }

  /** Matching objects, sorted by namespace and name. */
  list(resource: Resource, ns: string | undefined, sel?: Selector): KObject[] {
    const out: KObject[] = [];
    for (const { resource: r, obj } of this.#objects.values()) {
      if (r !== resource) continue;
      if (ns !== undefined && obj.metadata.namespace !== ns) continue;
      if (matches(obj, sel)) out.push(clone(obj));
    }
    return out.sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
  }

  /** Creates an object: 409 AlreadyExists when the name is taken, 422 when invalid. */
  create(resource: Resource, ns: string, input: KObject): KObject {
    const name = input.metadata?.name;
    if (!name) {
      throw new ApiError(
        422,
        "Invalid",
        `${KIND[resource]} "" is invalid: metadata.name: Required value: name or generateName is required`,
      );
    }
    const k = key(resource, ns, name);
    if (this.#objects.has(k)) {
      throw new ApiError(409, "AlreadyExists", `${resource} "${name}" already exists`, {
        name,
        kind: resource,
      });
    }
    const obj = clone(input);
    obj.apiVersion = "v1";
    obj.kind = KIND[resource];
    if (resource === "pods") obj.metadata.namespace = ns;
    obj.metadata.uid ??= crypto.randomUUID();
    obj.metadata.creationTimestamp ??= new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    this.#validate(resource, undefined, obj);
    return this.#commit("ADDED", resource, k, obj);
  }

  /** Replaces an object (PUT); a stale `metadata.resourceVersion` is 409 Conflict. */
  update(resource: Resource, ns: string, name: string, input: KObject, sub?: "status"): KObject {
    const old = this.get(resource, ns, name);
    if (input.metadata?.name !== undefined && input.metadata.name !== name) {
      throw new ApiError(
        400,
        "BadRequest",
        `the name of the object (${input.metadata.name}) does not match the name on the URL (${name})`,
      );
    }
    this.#precondition(resource, name, old, input.metadata?.resourceVersion);
    return this.#apply(resource, ns, name, old, clone(input), sub);
  }

  /** Patches an object; `sub: "status"` keeps spec, the main resource keeps status (as nodes do). */
  patch(
    resource: Resource,
    ns: string,
    name: string,
    patch: unknown,
    type: "merge" | "strategic",
    sub?: "status",
  ): KObject {
    const old = this.get(resource, ns, name);
    const rv = (patch as KObject | undefined)?.metadata?.resourceVersion;
    this.#precondition(resource, name, old, rv);
    const next = (type === "merge" ? jsonMergePatch(old, patch) : strategicMergePatch(old, patch)) as KObject;
    if (typeof next !== "object" || next === null || Array.isArray(next)) {
      throw new ApiError(400, "BadRequest", "the patch is not a JSON object");
    }
    return this.#apply(resource, ns, name, old, next, sub);
  }

  /** Deletes an object. */
  delete(resource: Resource, ns: string, name: string): KObject {
    const k = key(resource, ns, name);
    const got = this.#objects.get(k);
    if (!got) throw notFound(resource, name);
    this.#objects.delete(k);
    const obj = clone(got.obj);
    obj.metadata.resourceVersion = String(++this.#rv);
    this.#record({ type: "DELETED", resource, object: obj, rv: this.#rv });
    return clone(obj);
  }

  /**
   * Starts a watch: the events to send first (ADDED for every object without `fromRv`, or the
   * history after `fromRv`) and a live subscription. Throws 410 Expired for a version older than
   * the history, with the real server's message.
   */
  watch(
    resource: Resource,
    ns: string | undefined,
    sel: Selector | undefined,
    fromRv: string | undefined,
    live: (ev: StoreEvent) => void,
  ): { initial: StoreEvent[]; stop: () => void } {
    const wanted = (ev: StoreEvent) =>
      ev.resource === resource && (ns === undefined || ev.object.metadata.namespace === ns) &&
      matches(ev.object, sel);
    let initial: StoreEvent[];
    if (fromRv === undefined || fromRv === "" || fromRv === "0") {
      initial = this.list(resource, ns, sel).map((object) => ({
        type: "ADDED" as const,
        resource,
        object,
        rv: Number(object.metadata.resourceVersion),
      }));
    } else {
      const from = Number(fromRv);
      if (!Number.isInteger(from) || from < 0) {
        throw new ApiError(400, "BadRequest", `invalid resource version: ${JSON.stringify(fromRv)}`);
      }
      if (from < this.#historyStart) {
        throw new ApiError(410, "Expired", `too old resource version: ${from} (${this.#historyStart + 1})`);
      }
      initial = this.#history.filter((e) => e.rv > from && wanted(e)).map((e) => ({
        ...e,
        object: clone(e.object),
      }));
    }
    const cb = (ev: StoreEvent) => {
      if (wanted(ev)) live({ ...ev, object: clone(ev.object) });
    };
    this.#watchers.add(cb);
    return { initial, stop: () => this.#watchers.delete(cb) };
  }

  /** Every object, for persistence. */
  dump(): { rv: number; objects: { resource: Resource; obj: KObject }[] } {
    return { rv: this.#rv, objects: [...this.#objects.values()].map((o) => ({ ...o, obj: clone(o.obj) })) };
  }

  /** Restores a {@linkcode dump}; the history starts empty, as after a restart. */
  load(d: { rv: number; objects: { resource: Resource; obj: KObject }[] }): void {
    this.#objects.clear();
    for (const { resource, obj } of d.objects) {
      this.#objects.set(key(resource, obj.metadata.namespace ?? "", obj.metadata.name!), { resource, obj });
    }
    this.#rv = d.rv;
    this.compact();
  }

  #precondition(resource: Resource, name: string, old: KObject, rv: string | undefined): void {
    if (rv !== undefined && rv !== "" && rv !== old.metadata.resourceVersion) {
      throw new ApiError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your ` +
          `changes to the latest version and try again`,
        { name, kind: resource },
      );
    }
  }

  #apply(resource: Resource, ns: string, name: string, old: KObject, next: KObject, sub?: "status"): KObject {
    // Fields the request may not change are reset to the stored ones.
    next.apiVersion = "v1";
    next.kind = KIND[resource];
    next.metadata = {
      ...next.metadata,
      name,
      uid: old.metadata.uid,
      creationTimestamp: old.metadata.creationTimestamp,
      ...(resource === "pods" ? { namespace: ns } : {}),
    } as KObject["metadata"];
    if (sub === "status") {
      if (old.spec === undefined) delete next.spec;
      else next.spec = old.spec;
    } else if (old.status === undefined) delete next.status;
    else next.status = old.status;
    this.#validate(resource, old, next);
    next.metadata.resourceVersion = old.metadata.resourceVersion!;
    if (JSON.stringify(next) === JSON.stringify(old)) return old; // a no-op write is not an event
    return this.#commit("MODIFIED", resource, key(resource, ns, name), next);
  }

  #validate(resource: Resource, old: KObject | undefined, obj: KObject): void {
    if (resource === "nodes" && obj.spec) {
      // Defaulting, as the real API server does: podCIDR is podCIDRs[0] and the other way round.
      const list = obj.spec.podCIDRs as string[] | undefined;
      if (!list?.length && obj.spec.podCIDR) obj.spec.podCIDRs = [obj.spec.podCIDR as string];
      else if (list?.length && !obj.spec.podCIDR) obj.spec.podCIDR = list[0];
    }
    const name = obj.metadata.name ?? "";
    const invalid = (field: string, detail: string) =>
      new ApiError(422, "Invalid", `${KIND[resource]} "${name}" is invalid: ${field}: ${detail}`, {
        name,
        kind: KIND[resource],
        causes: [{ reason: "FieldValueInvalid", message: detail, field }],
      });
    for (const [k, v] of Object.entries(obj.metadata.annotations ?? {})) {
      const bad = badAnnotationKey(k);
      if (bad) throw invalid("metadata.annotations", `Invalid value: ${JSON.stringify(k)}: ${bad}`);
      if (typeof v !== "string") {
        throw invalid(`metadata.annotations[${k}]`, "Invalid value: must be a string");
      }
    }
    if (resource === "nodes" && old) {
      const before = JSON.stringify(cidrs(old));
      if (cidrs(old).length > 0 && before !== JSON.stringify(cidrs(obj))) {
        throw invalid(
          "spec.podCIDRs",
          `Forbidden: node updates may not change podCIDR except from "" to valid`,
        );
      }
    }
  }

  #commit(type: "ADDED" | "MODIFIED", resource: Resource, k: string, obj: KObject): KObject {
    obj.metadata.resourceVersion = String(++this.#rv);
    this.#objects.set(k, { resource, obj });
    this.#record({ type, resource, object: clone(obj), rv: this.#rv });
    return clone(obj);
  }

  #record(ev: StoreEvent): void {
    this.#history.push(ev);
    while (this.#history.length > this.#historyLimit) this.#historyStart = this.#history.shift()!.rv;
    for (const w of [...this.#watchers]) w(ev);
    this.onChange?.();
  }
}

function cidrs(node: KObject): string[] {
  const list = node.spec?.podCIDRs as string[] | undefined;
  if (list?.length) return list;
  const one = node.spec?.podCIDR as string | undefined;
  return one ? [one] : [];
}

function key(resource: Resource, ns: string, name: string): string {
  return resource === "pods" ? `${resource}/${ns}/${name}` : `${resource}/${name}`;
}

function sortKey(o: KObject): string {
  return `${o.metadata.namespace ?? ""}/${o.metadata.name ?? ""}`;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

/**
 * The node annotations flannel writes and reads, named from `--kube-annotation-prefix` (default
 * `flannel.alpha.coreos.com`) by upstream's normalisation rules (§4.2 of the behaviour reference).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { annotationNames } from "./annotations.ts";
 * const names = annotationNames("flannel.alpha.coreos.com");
 * assert.equal(names.backendType, "flannel.alpha.coreos.com/backend-type");
 * assert.equal(annotationNames("example.com/net").publicIP, "example.com/net-public-ip");
 * ```
 *
 * @module
 */

/** The prefix after normalisation must end with this pattern (upstream's check). */
const PREFIX_RE = /^(?:[a-z0-9_-]+\.)+[a-z0-9_-]+\/(?:[a-z0-9_-]+-)?$/;

/** A `--kube-annotation-prefix` that upstream would refuse; the message keeps upstream's text. */
export class AnnotationPrefixError extends TypeError {
  override name = "AnnotationPrefixError";
}

/**
 * Normalises an annotation prefix: a prefix without `/` gets one appended; a prefix that then
 * ends in neither `/` nor `-` gets `-` appended. The result must be `fqdn/` or `fqdn/name-`,
 * lower case.
 *
 * Deviation: upstream matches the pattern without anchoring its start, so `Example.com` passed
 * here and failed later when the API server refused the annotation key; we refuse it up front.
 *
 * @throws {AnnotationPrefixError} with upstream's reason after the colon.
 */
export function normalizeAnnotationPrefix(prefix: string): string {
  const slashes = prefix.split("/").length - 1;
  if (slashes > 1) {
    throw new AnnotationPrefixError(
      `Cannot use --kube-annotation-prefix ${JSON.stringify(prefix)}: ` +
        `subnet/kube: prefix can contain at most single slash`,
    );
  }
  let p = slashes === 0 ? `${prefix}/` : prefix;
  if (!p.endsWith("/") && !p.endsWith("-")) p += "-";
  if (!PREFIX_RE.test(p)) {
    throw new AnnotationPrefixError(
      `Cannot use --kube-annotation-prefix ${JSON.stringify(prefix)}: ` +
        `subnet/kube: prefix must be in a format: fqdn/[0-9a-z-_]*`,
    );
  }
  return p;
}

/** The full annotation keys for one prefix. */
export interface AnnotationNames {
  /** The normalised prefix, e.g. `flannel.alpha.coreos.com/`. */
  readonly prefix: string;
  /** Written `"true"`; nodes without it are not flannel nodes. */
  readonly kubeSubnetManager: string;
  readonly backendType: string;
  readonly backendData: string;
  readonly backendV6Data: string;
  readonly publicIP: string;
  readonly publicIPv6: string;
  /** Read: when set, the published `public-ip` is this value. */
  readonly publicIPOverwrite: string;
  readonly publicIPv6Overwrite: string;
  /** Read at start-up: overrides `--public-ip`. */
  readonly nodePublicIP: string;
  readonly nodePublicIPv6: string;
}

/**
 * The annotation keys for `--kube-annotation-prefix`.
 *
 * @throws {AnnotationPrefixError} for a prefix upstream refuses.
 */
export function annotationNames(prefix: string): AnnotationNames {
  const p = normalizeAnnotationPrefix(prefix);
  return Object.freeze({
    prefix: p,
    kubeSubnetManager: `${p}kube-subnet-manager`,
    backendType: `${p}backend-type`,
    backendData: `${p}backend-data`,
    backendV6Data: `${p}backend-v6-data`,
    publicIP: `${p}public-ip`,
    publicIPv6: `${p}public-ipv6`,
    publicIPOverwrite: `${p}public-ip-overwrite`,
    publicIPv6Overwrite: `${p}public-ipv6-overwrite`,
    nodePublicIP: `${p}node-public-ip`,
    nodePublicIPv6: `${p}node-public-ipv6`,
  });
}

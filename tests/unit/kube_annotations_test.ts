import assert from "node:assert/strict";
import {
  annotationNames,
  AnnotationPrefixError,
  normalizeAnnotationPrefix,
} from "../../src/lease/kube/annotations.ts";

// Every example of §4.2 of the behaviour reference.
const NORMALISED: [string, string][] = [
  ["flannel.alpha.coreos.com", "flannel.alpha.coreos.com/backend-type"],
  ["flannel.alpha.coreos.com/", "flannel.alpha.coreos.com/backend-type"],
  ["flannel.alpha.coreos.com/prefix", "flannel.alpha.coreos.com/prefix-backend-type"],
  ["flannel.alpha.coreos.com/prefix-", "flannel.alpha.coreos.com/prefix-backend-type"],
  ["org.com/9", "org.com/9-backend-type"],
];

for (const [prefix, want] of NORMALISED) {
  Deno.test(`kube annotations: prefix ${JSON.stringify(prefix)} names ${want}`, () => {
    assert.equal(annotationNames(prefix).backendType, want);
  });
}

const FORMAT = "subnet/kube: prefix must be in a format: fqdn/[0-9a-z-_]*";
const REFUSED: [string, string][] = [
  ["org", FORMAT],
  ["org/", FORMAT],
  ["org/prefix", FORMAT],
  ["org.COM", FORMAT],
  ["org.com/PREFIX", FORMAT],
  ["a.org/b/c", "subnet/kube: prefix can contain at most single slash"],
  // Deviation: upstream's pattern is not anchored at the start and accepted these.
  ["Example.com", FORMAT],
  ["@@x.org/", FORMAT],
];

for (const [prefix, reason] of REFUSED) {
  Deno.test(`kube annotations: prefix ${JSON.stringify(prefix)} is refused`, () => {
    assert.throws(() => normalizeAnnotationPrefix(prefix), (e) => {
      assert.ok(e instanceof AnnotationPrefixError);
      assert.equal(e.message, `Cannot use --kube-annotation-prefix ${JSON.stringify(prefix)}: ${reason}`);
      return true;
    });
  });
}

Deno.test("kube annotations: every name of the default prefix", () => {
  const n = annotationNames("flannel.alpha.coreos.com");
  assert.deepEqual({ ...n }, {
    prefix: "flannel.alpha.coreos.com/",
    kubeSubnetManager: "flannel.alpha.coreos.com/kube-subnet-manager",
    backendType: "flannel.alpha.coreos.com/backend-type",
    backendData: "flannel.alpha.coreos.com/backend-data",
    backendV6Data: "flannel.alpha.coreos.com/backend-v6-data",
    publicIP: "flannel.alpha.coreos.com/public-ip",
    publicIPv6: "flannel.alpha.coreos.com/public-ipv6",
    publicIPOverwrite: "flannel.alpha.coreos.com/public-ip-overwrite",
    publicIPv6Overwrite: "flannel.alpha.coreos.com/public-ipv6-overwrite",
    nodePublicIP: "flannel.alpha.coreos.com/node-public-ip",
    nodePublicIPv6: "flannel.alpha.coreos.com/node-public-ipv6",
  });
});

/**
 * The lease-store suite against the kube subnet manager and the fake API server: each "node" of
 * the suite is a Node object with a pod CIDR, as Kubernetes' IPAM would assign; peers are nodes
 * with flannel's annotations, as another flannel would write them.
 */
import { parseNetworkConfig } from "../../src/config/network_config.ts";
import { KubeClient } from "../../src/lease/kube/client.ts";
import { KubeSubnetManager } from "../../src/lease/kube/manager.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { systemClock } from "../../src/util/clock.ts";
import { FakeKubeApiServer, fakeNode } from "../fakes/kube_api_server.ts";
import { CONFIG, managerSuite } from "./lease_store_suite.ts";

const P = "flannel.alpha.coreos.com/";

const peerName = (subnet: string) => `peer-${subnet.replace(/[./]/g, "-")}`;

function peerAnnotations(ip: string): Record<string, string> {
  return {
    [`${P}kube-subnet-manager`]: "true",
    [`${P}backend-type`]: "alloc",
    [`${P}backend-data`]: "null",
    [`${P}public-ip`]: ip,
  };
}

managerSuite({
  name: "kube",
  capabilities: { restart: true, cutWatches: true },
  async open() {
    const fake = await FakeKubeApiServer.start({ bookmarkIntervalMs: 200 });
    const client = new KubeClient({ server: fake.url });
    const managers: KubeSubnetManager[] = [];
    let config = parseNetworkConfig(CONFIG);
    let nextSubnet = 1;
    const putNode = (subnet: string, annotations: Record<string, string>) => {
      const name = peerName(subnet);
      try {
        fake.modifyNode(name, (n) => void (n.metadata.annotations = annotations));
      } catch {
        fake.addNode(fakeNode(name, { podCIDR: subnet, annotations }));
      }
    };
    return {
      manager(node: string) {
        const name = `node-${node.replaceAll(".", "-")}`;
        try {
          fake.getNode(name);
        } catch {
          fake.addNode(fakeNode(name, { podCIDR: `10.3.${nextSubnet++}.0/24` }));
        }
        const log = new MemoryLogger();
        const m = new KubeSubnetManager({
          client,
          nodeName: name,
          config,
          annotationPrefix: "flannel.alpha.coreos.com",
          setNodeNetworkUnavailable: true,
          log,
          clock: systemClock,
          pollMs: 100,
          watchTimeoutSeconds: 30,
        });
        managers.push(m);
        return { m, log };
      },
      setConfig(text: string) {
        config = parseNetworkConfig(text);
        return Promise.resolve();
      },
      putPeer(subnet: string, ip: string) {
        putNode(subnet, peerAnnotations(ip));
        return Promise.resolve();
      },
      putBadPeer(subnet: string) {
        putNode(subnet, peerAnnotations("not-an-ip"));
        const mark = peerName(subnet);
        return Promise.resolve({
          mark,
          pattern: new RegExp(`Error turning node "${mark}" to lease.*public-ip is "not-an-ip"`),
        });
      },
      deletePeer(subnet: string) {
        fake.deleteNode(peerName(subnet));
        return Promise.resolve();
      },
      compact() {
        fake.store.compact();
        fake.cutWatches("abrupt");
        return Promise.resolve();
      },
      restart: () => fake.restart({ downMs: 200 }),
      cutWatches() {
        fake.cutWatches("abrupt");
        return Promise.resolve();
      },
      async close() {
        await Promise.all(managers.map((m) => m.close()));
        await fake.stop();
      },
    };
  },
});

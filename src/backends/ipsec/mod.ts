/**
 * The `ipsec` backend: IKEv2 by strongSwan's charon (a child process we control over VICI), ESP
 * in tunnel mode between every pair of nodes.
 *
 * Design notes. What goes into the kernel per peer (a lease with BackendType ipsec), with reqid
 * 11 tying the policies to the SAs charon negotiates:
 *
 *   ip xfrm policy update src <our subnet> dst <peer subnet> dir out \
 *      tmpl src <our PublicIP> dst <peer PublicIP> proto esp reqid 11 mode tunnel
 *   ip xfrm policy update src <peer subnet> dst <our subnet> dir in  tmpl src <peer> dst <us> …
 *   ip xfrm policy update src <peer subnet> dst <our subnet> dir fwd tmpl src <peer> dst <us> …
 *
 * and in charon: the PSK for the peer's address and a connection named
 * `<ourIP>-<ourSubnet>-<peerSubnet>-<peerIP>` with one child `<ourSubnet>-<peerSubnet>` that
 * starts at once and is re-trapped on close. charon installs the SAs; we own the policies
 * (`policies = no`). Better than upstream: policies with our reqid that no lease backs — left by
 * a previous run or a departed node — are removed, instead of telling operators to flush by hand.
 *
 * @module
 */
import { IP4 } from "../../ip/mod.ts";
import type { Lease } from "../../lease/types.ts";
import { leaseIdentity } from "../../lease/watcher.ts";
import type { XfrmPolicy } from "../../netlink/ops.ts";
import type { Child, HostOps } from "../host.ts";
import { BackendConfigError, OptionReader } from "../options.ts";
import type { ReconcileResult } from "../reconcile.ts";
import { runNetLoop } from "../net_loop.ts";
import {
  acquireLease,
  type BackendContext,
  type BackendFactory,
  type Network,
  requireHost,
  requireKernel,
} from "../types.ts";
import {
  CMD_REQUEST,
  CMD_RESPONSE,
  decodeViciPacket,
  encodeViciPacket,
  type ViciMessage,
  viciMessage,
  viciSegmentLength,
} from "./vici.ts";

/** The reqid that links our policies and charon's SAs (upstream's value). */
export const IPSEC_REQID = 11;
/** charon's VICI socket. */
export const VICI_SOCKET = "/var/run/charon.vici";
/** Where charon may live, after PATH (upstream's list). */
export const CHARON_PATHS = [
  "/usr/lib/strongswan/charon",
  "/usr/lib/ipsec/charon",
  "/usr/libexec/strongswan/charon",
  "/usr/libexec/ipsec/charon",
];

/** `Backend` options of type ipsec. */
export interface IpsecConfig {
  psk: string;
  udpEncap: boolean;
  espProposal: string;
}

/** Parses the options; the PSK must have at least 96 characters (upstream's check and text). */
export function parseIpsecConfig(backend: Record<string, unknown>): IpsecConfig {
  const r = new OptionReader(backend, "error decoding IPSec backend config");
  const psk = r.string("PSK");
  if (psk.length < 96) {
    throw new BackendConfigError(
      `config error, password is too short: Backend "PSK" has ${psk.length} characters, needs at least 96 ` +
        "(for example: dd if=/dev/urandom count=48 bs=1 status=none | xxd -p -c 48)",
    );
  }
  return {
    psk,
    udpEncap: r.bool("UDPEncap"),
    espProposal: r.string("ESPProposal", "aes128gcm16-sha256-prfsha256-ecp256"),
  };
}

/** Sends one VICI command; throws when charon says `success = no`. */
export async function viciCommand(
  host: HostOps,
  command: string,
  message: ViciMessage,
): Promise<ViciMessage> {
  const res = await host.unixRequest(
    VICI_SOCKET,
    encodeViciPacket({ type: CMD_REQUEST, name: command, message }),
    (r) => viciSegmentLength(r) !== undefined,
  );
  const p = decodeViciPacket(res);
  if (p.type !== CMD_RESPONSE) {
    throw new Error(`charon does not know the VICI command ${command} (packet type ${p.type})`);
  }
  if (p.message.get("success") === "no") {
    throw new Error(`charon refused ${command}: ${String(p.message.get("errmsg") ?? "no reason given")}`);
  }
  return p.message;
}

/** The connection charon gets for one peer, exactly as upstream names and shapes it. */
export function peerConnection(
  cfg: IpsecConfig,
  own: Lease,
  peer: Lease,
): { name: string; message: ViciMessage } {
  const name = `${own.attrs.publicIP}-${own.subnet}-${peer.subnet}-${peer.attrs.publicIP}`;
  const child = `${own.subnet}-${peer.subnet}`;
  return {
    name,
    message: viciMessage({
      [name]: {
        local_addrs: [String(own.attrs.publicIP)],
        remote_addrs: [String(peer.attrs.publicIP)],
        proposals: ["aes256-sha256-modp4096"],
        version: "2",
        keyingtries: "0",
        encap: cfg.udpEncap ? "true" : "false",
        local: { auth: "psk" },
        remote: { auth: "psk" },
        children: {
          [child]: {
            local_ts: [String(own.subnet)],
            remote_ts: [String(peer.subnet)],
            esp_proposals: [cfg.espProposal],
            start_action: "start",
            close_action: "trap",
            dpd_action: "restart",
            mode: "tunnel",
            reqid: String(IPSEC_REQID),
            rekey_time: "1h",
            policies: "no",
          },
        },
      },
    }),
  };
}

/** The three policies per peer. */
export function peerPolicies(own: Lease, peer: Lease): XfrmPolicy[] {
  const us = own.attrs.publicIP;
  const them = peer.attrs.publicIP;
  return [
    { src: own.subnet, dst: peer.subnet, dir: "out", tmplSrc: us, tmplDst: them, reqid: IPSEC_REQID },
    { src: peer.subnet, dst: own.subnet, dir: "in", tmplSrc: them, tmplDst: us, reqid: IPSEC_REQID },
    { src: peer.subnet, dst: own.subnet, dir: "fwd", tmplSrc: them, tmplDst: us, reqid: IPSEC_REQID },
  ];
}

const policyKey = (p: XfrmPolicy) => `${p.src}|${p.dst}|${p.dir}`;
const samePolicy = (a: XfrmPolicy, b: XfrmPolicy) =>
  policyKey(a) === policyKey(b) && String(a.tmplSrc) === String(b.tmplSrc) &&
  String(a.tmplDst) === String(b.tmplDst) && a.reqid === b.reqid;

/** The ipsec backend factory. */
export const ipsecBackend: BackendFactory = {
  type: "ipsec",
  async register(ctx: BackendContext): Promise<Network> {
    const kernel = requireKernel(ctx, "ipsec");
    const host = requireHost(ctx, "ipsec");
    const { ext, log } = ctx;
    const cfg = parseIpsecConfig(ctx.config.backend);
    const charonPath = await host.which("charon", CHARON_PATHS.map((p) => p.slice(0, p.lastIndexOf("/"))));
    if (!charonPath) {
      throw new Error(
        `cannot find charon in PATH or ${
          CHARON_PATHS.join(", ")
        }: install strongSwan with its VICI plugin (apt-get install strongswan-charon strongswan-swanctl)`,
      );
    }
    let charonReady = false;
    // charon's own lines at info until it answers on VICI (they explain a failed start), then -v=1.
    const charon: Child = host.spawn([charonPath], {
      log: (line) => charonReady ? log.v(1, `charon: ${line}`) : log.info(`charon: ${line}`),
    });
    let charonExit: number | undefined;
    charon.exited.then((c) => (charonExit = c));

    const lease = await acquireLease(ctx, {
      publicIP: ext.extAddr ?? IP4.fromNumber(0),
      backendType: "ipsec",
    });
    const mtu = ext.mtu - 77 - (cfg.udpEncap ? 8 : 0);
    const loaded = new Map<string, Lease>();
    const sharedKey = (owner: IP4) => viciMessage({ type: "IKE", data: cfg.psk, owners: [String(owner)] });

    const waitForCharon = async (signal: AbortSignal) => {
      for (let attempt = 1;; attempt++) {
        if (charonExit !== undefined) {
          throw new Error(`charon exited with code ${charonExit}; see its log lines above`);
        }
        try {
          await viciCommand(host, "load-shared", sharedKey(lease.attrs.publicIP));
          charonReady = true;
          return;
        } catch (e) {
          if (attempt === 1) {
            log.info(`Waiting for charon's VICI socket ${VICI_SOCKET}: ${(e as Error).message}`);
          } else if (attempt % 30 === 0) {
            // charon runs but never opened VICI: on Debian the plugin is a separate package.
            log.error(
              `charon has been running for ${attempt} s without its VICI socket ${VICI_SOCKET} ` +
                `(${(e as Error).message}); is the VICI plugin installed? apt-get install strongswan-swanctl`,
            );
          }
          await ctx.clock.sleep(1000, signal);
        }
      }
    };

    const pass = async (peers: Lease[]): Promise<ReconcileResult> => {
      const res: ReconcileResult = { added: 0, updated: 0, deleted: 0, errors: [] };
      const failed = (e: unknown) => {
        res.errors.push(e as Error);
        log.warn((e as Error).message);
      };
      // Policies: reconcile every policy with our reqid.
      const want = new Map<string, XfrmPolicy>();
      for (const p of peers) for (const pol of peerPolicies(lease, p)) want.set(policyKey(pol), pol);
      const have = (await kernel.xfrmPolicyList()).filter((p) => p.reqid === IPSEC_REQID);
      for (const p of have) {
        if (!want.has(policyKey(p))) await kernel.xfrmPolicyDel(p).then(() => void res.deleted++, failed);
      }
      const haveBy = new Map(have.map((p) => [policyKey(p), p]));
      for (const [k, p] of want) {
        const h = haveBy.get(k);
        if (!h || !samePolicy(h, p)) {
          await kernel.xfrmPolicyReplace(p).then(() => void (h ? res.updated++ : res.added++), failed);
        }
      }
      // Connections in charon.
      const wantConns = new Map(peers.map((p) => [peerConnection(cfg, lease, p).name, p]));
      for (const [name] of loaded) {
        if (wantConns.has(name)) continue;
        await viciCommand(host, "unload-conn", viciMessage({ name })).catch((e) =>
          log.warn((e as Error).message)
        );
        loaded.delete(name);
      }
      for (const [name, p] of wantConns) {
        if (loaded.has(name)) continue;
        try {
          await viciCommand(host, "load-shared", sharedKey(p.attrs.publicIP));
          await viciCommand(host, "load-conn", peerConnection(cfg, lease, p).message);
          loaded.set(name, p);
          res.added++;
          log.info(`Loaded IPsec connection ${name}`);
        } catch (e) {
          res.errors.push(e as Error);
          log.warn(
            `Cannot load the IPsec connection ${name} (retried on the next change): ${(e as Error).message}`,
          );
        }
      }
      return res;
    };

    return {
      lease,
      mtu,
      // Ready only once charon took our key and the first pass programmed every peer.
      reconciles: true,
      async run(batches, signal) {
        await waitForCharon(signal);
        // The shared loop: coalesced passes, a resync timer, and a failed pass never ends it.
        await runNetLoop(
          {
            kernel,
            log,
            clock: ctx.clock,
            interesting: () => false,
            async pass(leases) {
              if (charonExit !== undefined) throw new Error(`charon exited with code ${charonExit}`);
              const peers = [...leases.values()].filter((l) =>
                l.attrs.backendType === "ipsec" && leaseIdentity(l) !== leaseIdentity(lease) &&
                !l.attrs.publicIP.isUnspecified()
              );
              const result = await pass(peers);
              ctx.onReconcile?.(result);
            },
          },
          batches,
          signal,
        );
      },
      async close() {
        charon.kill("SIGTERM");
        await charon.exited;
      },
    };
  },
};

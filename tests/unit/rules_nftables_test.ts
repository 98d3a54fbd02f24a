// The pure nftables builders against literal text: the golden `nft list chain` output pinned by
// upstream's e2e suite, and what nft 1.0.6 printed here for `nft list table` of the same rules.

import assert from "node:assert/strict";
import { IP4Net, IP6Net } from "../../src/ip/mod.ts";
import {
  createTablesScript,
  deleteTablesScript,
  firstDifference,
  forwardChain,
  fullyRandomProbeScript,
  masqChain,
  NFT_TABLES,
  nftPrefix,
  rebuildTableScript,
  renderChainListing,
  renderTableListing,
} from "../../src/rules/nftables_rules.ts";

const N4 = IP4Net.parse("10.42.0.0/16");
const P4 = IP4Net.parse("10.42.1.0/24");
const N6 = IP6Net.parse("fd00:10:244::/56");
const P6 = IP6Net.parse("fd00:10:244:1::/64");

const GOLDEN_POSTRTG_V4 = `table ip flannel-ipv4 {
	chain postrtg {
		comment "chain to manage traffic masquerading by flannel"
		type nat hook postrouting priority srcnat; policy accept;
		meta mark 0x00004000 return
		ip saddr 10.42.1.0/24 ip daddr 10.42.0.0/16 return
		ip saddr 10.42.0.0/16 ip daddr 10.42.1.0/24 return
		ip saddr != 10.42.1.0/24 ip daddr 10.42.0.0/16 return
		ip saddr 10.42.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random
		ip saddr != 10.42.0.0/16 ip daddr 10.42.0.0/16 masquerade fully-random
	}
}
`;

const GOLDEN_FORWARD_V4 = `table ip flannel-ipv4 {
	chain forward {
		comment "chain to accept flannel traffic"
		type filter hook forward priority filter; policy accept;
		ip saddr 10.42.0.0/16 accept
		ip daddr 10.42.0.0/16 accept
	}
}
`;

const TABLE_V6 = `table ip6 flannel-ipv6 {
	comment "rules for flannel-ipv6"
	chain postrtg {
		comment "chain to manage traffic masquerading by flannel"
		type nat hook postrouting priority srcnat; policy accept;
		meta mark 0x00004000 return
		ip6 saddr fd00:10:244:1::/64 ip6 daddr fd00:10:244::/56 return
		ip6 saddr fd00:10:244::/56 ip6 daddr fd00:10:244:1::/64 return
		ip6 saddr != fd00:10:244:1::/64 ip6 daddr fd00:10:244::/56 return
		ip6 saddr fd00:10:244::/56 ip6 daddr != ff00::/8 masquerade
		ip6 saddr != fd00:10:244::/56 ip6 daddr fd00:10:244::/56 masquerade
	}

	chain forward {
		comment "chain to accept flannel traffic"
		type filter hook forward priority filter; policy accept;
		ip6 saddr fd00:10:244::/56 accept
		ip6 daddr fd00:10:244::/56 accept
	}
}
`;

Deno.test("nft postrtg chain matches upstream's golden listing (IPv4, fully-random)", () => {
  assert.equal(renderChainListing(NFT_TABLES.ipv4, masqChain("ipv4", N4, P4, true)), GOLDEN_POSTRTG_V4);
});

Deno.test("nft postrtg chain without fully-random", () => {
  assert.equal(
    renderChainListing(NFT_TABLES.ipv4, masqChain("ipv4", N4, P4, false)),
    GOLDEN_POSTRTG_V4.replaceAll(" fully-random", ""),
  );
});

Deno.test("nft forward chain matches upstream's golden listing", () => {
  assert.equal(renderChainListing(NFT_TABLES.ipv4, forwardChain("ipv4", N4)), GOLDEN_FORWARD_V4);
});

Deno.test("nft list table text, IPv6, both chains, as nft 1.0.6 prints it", () => {
  const chains = [masqChain("ipv6", N6, P6, false), forwardChain("ipv6", N6)];
  assert.equal(renderTableListing(NFT_TABLES.ipv6, chains), TABLE_V6);
  assert.equal(
    renderTableListing(NFT_TABLES.ipv4, []),
    `table ip flannel-ipv4 {\n\tcomment "rules for flannel-ipv4"\n}\n`,
  );
});

Deno.test("nftPrefix drops a full-length prefix as nft does", () => {
  assert.equal(nftPrefix(IP4Net.parse("10.0.0.1/32")), "10.0.0.1");
  assert.equal(nftPrefix(IP4Net.parse("10.0.0.1/24")), "10.0.0.0/24");
  assert.equal(nftPrefix(IP6Net.parse("fd00::1/128")), "fd00::1");
  assert.equal(nftPrefix(P6), "fd00:10:244:1::/64");
});

Deno.test("rebuild script: re-create the table with its chains in one transaction", () => {
  assert.equal(
    rebuildTableScript(NFT_TABLES.ipv4, [forwardChain("ipv4", N4)]),
    `add table ip flannel-ipv4
delete table ip flannel-ipv4
add table ip flannel-ipv4 { comment "rules for flannel-ipv4" ; }
add chain ip flannel-ipv4 forward { comment "chain to accept flannel traffic" ; type filter hook forward priority filter ; policy accept ; }
add rule ip flannel-ipv4 forward ip saddr 10.42.0.0/16 accept
add rule ip flannel-ipv4 forward ip daddr 10.42.0.0/16 accept
`,
  );
});

Deno.test("table scripts: create both, delete whether present or not, fully-random probe", () => {
  assert.equal(
    createTablesScript(),
    `add table ip flannel-ipv4 { comment "rules for flannel-ipv4" ; }\n` +
      `add table ip6 flannel-ipv6 { comment "rules for flannel-ipv6" ; }\n`,
  );
  assert.equal(
    deleteTablesScript([NFT_TABLES.ipv6]),
    "add table ip6 flannel-ipv6\ndelete table ip6 flannel-ipv6\n",
  );
  assert.match(
    fullyRandomProbeScript(),
    /add chain ip flannel-ipv4 masqueradeTest .*\n.*masquerade fully-random\n$/,
  );
});

Deno.test("firstDifference", () => {
  assert.equal(firstDifference("a\nb\n", "a\nb\n"), undefined);
  assert.deepEqual(firstDifference("a\nb\n", "a\nc\n"), { line: 2, want: "b", got: "c" });
  assert.deepEqual(firstDifference("a\n", "a\nx\n"), { line: 2, want: "", got: "x" });
});

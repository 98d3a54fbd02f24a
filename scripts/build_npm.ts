/**
 * `deno task build:npm`: builds the npm package in `npm/` from `mod.ts` and smoke-tests it under
 * Node.
 *
 * 1. `deno info --json mod.ts` gives the module graph: the local files and the bare imports.
 * 2. Those files are copied to `npm/.src/`, keeping their paths; the bare imports become
 *    `dependencies` at the versions pinned in deno.json's import map.
 * 3. `npm install`, then TypeScript (pinned in tools/deno) compiles to `npm/esm/` with
 *    declarations, rewriting `.ts` import extensions to `.js`.
 * 4. Node imports the built package, parses a net-conf, computes a lease key and a lease value.
 */
const root = new URL("..", import.meta.url).pathname;
const out = `${root}npm`;
const src = `${out}/.src`;

async function run(cmd: string, args: string[], cwd = root): Promise<string> {
  const r = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(r.stdout);
  if (!r.success) {
    console.error(text, new TextDecoder().decode(r.stderr));
    throw new Error(`${cmd} ${args.join(" ")} failed with exit code ${r.code}`);
  }
  return text;
}

const denoJson = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
const imports: Record<string, string> = denoJson.imports ?? {};

interface InfoModule {
  specifier: string;
  local?: string;
  dependencies?: { specifier: string }[];
}
const info = JSON.parse(await run(Deno.execPath(), ["info", "--json", `${root}mod.ts`]));
const files: string[] = [];
const deps: Record<string, string> = {};
for (const m of info.modules as InfoModule[]) {
  if (!m.specifier.startsWith("file://") || !m.local) continue;
  files.push(m.local.slice(root.length));
  for (const d of m.dependencies ?? []) {
    if (d.specifier.startsWith(".") || d.specifier.startsWith("/")) continue;
    const name = Object.keys(imports).find((k) =>
      d.specifier === k || (k.endsWith("/") && d.specifier.startsWith(k))
    );
    const target = name && imports[name];
    const m2 = target && /^npm:\/?((?:@[^/]+\/)?[^@/]+)@([^/]+)/.exec(target);
    if (!m2) {
      throw new Error(`${m.local}: import "${d.specifier}" is not an npm package in deno.json's imports`);
    }
    deps[m2[1]!] = m2[2]!;
  }
}
for (const f of files) {
  if (f.startsWith("src/runtime/") || f.startsWith("src/cli/")) {
    throw new Error(`mod.ts reaches ${f}: the library surface must not depend on runtime-specific code`);
  }
}

await Deno.remove(out, { recursive: true }).catch(() => {});
for (const f of files) {
  await Deno.mkdir(`${src}/${f.slice(0, f.lastIndexOf("/") + 1)}`, { recursive: true });
  await Deno.copyFile(`${root}${f}`, `${src}/${f}`);
}
const pkg = {
  name: "flannel-ts",
  version: denoJson.version,
  description: "flannel, the overlay network for Kubernetes, in TypeScript: lease model, etcd client, config",
  license: "Apache-2.0",
  type: "module",
  main: "./esm/mod.js",
  types: "./esm/mod.d.ts",
  exports: { ".": { types: "./esm/mod.d.ts", import: "./esm/mod.js" } },
  files: ["esm/"],
  engines: { node: ">=20" },
  dependencies: deps,
};
await Deno.writeTextFile(`${out}/package.json`, JSON.stringify(pkg, null, 2) + "\n");
await Deno.writeTextFile(
  `${out}/tsconfig.json`,
  JSON.stringify(
    {
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2022", "DOM"],
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        noImplicitOverride: true,
        declaration: true,
        outDir: "esm",
        rootDir: ".src",
        allowImportingTsExtensions: true,
        rewriteRelativeImportExtensions: true,
        skipLibCheck: true,
        types: [],
      },
      include: [".src/**/*.ts"],
    },
    null,
    2,
  ),
);
if (Object.keys(deps).length > 0) {
  await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], out);
}
await run(`${root}tools/deno/node_modules/.bin/tsc`, ["-p", "tsconfig.json"], out);
await Deno.remove(src, { recursive: true });
await Deno.remove(`${out}/tsconfig.json`);

// Smoke test under Node: the built package imports, parses a net-conf, computes a lease key.
const smoke = `
import { parseAndCheckNetworkConfig, makeSubnetKey, IP4Net, IP4, encodeLeaseAttrs, MemoryKV, KVSubnetManager, nullLogger, systemClock } from "flannel-ts";
const cfg = parseAndCheckNetworkConfig('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}');
if (cfg.subnetMin.toString() !== "10.5.1.0" || cfg.backendType !== "vxlan") throw new Error("config");
if (makeSubnetKey(IP4Net.parse("10.5.34.0/24")) !== "10.5.34.0-24") throw new Error("key");
if (encodeLeaseAttrs({ publicIP: IP4.parse("1.2.3.4") }) !== '{"PublicIP":"1.2.3.4","PublicIPv6":null}') throw new Error("lease");
const kv = new MemoryKV();
kv.put("/coreos.com/network/config", '{"Network":"10.5.0.0/16"}');
const m = new KVSubnetManager({ kv, prefix: "/coreos.com/network", log: nullLogger, clock: systemClock });
const lease = await m.acquireLease({ publicIP: IP4.parse("1.2.3.4") });
kv.close();
console.log("node " + process.version + ": flannel-ts works, leased " + lease.subnet);
`;
await Deno.writeTextFile(`${out}/.smoke.mjs`, smoke);
await Deno.mkdir(`${out}/node_modules`, { recursive: true });
await Deno.symlink("..", `${out}/node_modules/flannel-ts`).catch(() => {});
try {
  console.log((await run("node", [".smoke.mjs"], out)).trim());
} finally {
  await Deno.remove(`${out}/.smoke.mjs`);
  await Deno.remove(`${out}/node_modules/flannel-ts`);
}
console.log(`Built ${out} (${files.length} modules, dependencies: ${JSON.stringify(deps)})`);

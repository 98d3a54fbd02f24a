/**
 * `deno task bundle`: one self-contained executable file `dist/flanneld`, the source bundled by
 * `deno bundle` behind a `#!/usr/bin/env -S DENO_NO_UPDATE_CHECK=1 deno run <permissions>` line (the
 * daemon must never reach for dl.deno.land; the e2e tests caught Deno's update check doing so). The permissions come
 * from `scripts/permissions`, the same file `deno task compile` and `deno task dev` read.
 */
const root = new URL("..", import.meta.url).pathname;
const perms = (await Deno.readTextFile(`${root}scripts/permissions`)).trim();
const tmp = `${root}dist/.flanneld.bundle.js`;
await Deno.mkdir(`${root}dist`, { recursive: true });
const out = await new Deno.Command(Deno.execPath(), {
  args: ["bundle", "--quiet", "--platform=deno", "-o", tmp, `${root}src/cli/main.ts`],
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!out.success) Deno.exit(out.code);
const body = await Deno.readTextFile(tmp);
await Deno.remove(tmp);
const target = `${root}dist/flanneld`;
await Deno.writeTextFile(
  target,
  `#!/usr/bin/env -S DENO_NO_UPDATE_CHECK=1 deno run --no-config --quiet ${perms}\n${body}`,
  {
    mode: 0o755,
  },
);
await Deno.chmod(target, 0o755);
console.log(`Wrote ${target} (${(body.length / 1024).toFixed(0)} KiB)`);

/**
 * Runs a fake cloud in its own process (the e2e tests start it inside the virtual cluster's switch
 * namespace, where the nodes can reach it): `deno run -A serve.ts tencent <listen address>`.
 * Prints one JSON line, `{"url":…,"env":{…}}`, then serves until killed.
 */
import { FakeTencentCloud } from "./tencent_api.ts";

const [kind, host = "127.0.0.1"] = Deno.args;
if (kind !== "tencent") {
  console.error(`serve.ts: unknown fake cloud ${JSON.stringify(kind)}: use tencent`);
  Deno.exit(2);
}
const fake = new FakeTencentCloud(host);
console.log(JSON.stringify({ url: fake.url, env: fake.env() }));

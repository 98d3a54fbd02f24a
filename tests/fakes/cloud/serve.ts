/**
 * Runs a fake cloud in its own process (the e2e tests start it inside the virtual cluster's switch
 * namespace, where the nodes can reach it): `deno run -A serve.ts <tencent|aws|gce|ali> <address>`.
 * Prints one JSON line, `{"env":{…},"control":"http://…"}`: the environment that points a daemon
 * at the fake, and a second port whose GET answers the fake's routes as sorted text lines (its
 * `render()`), for the test to read. Serves until killed.
 */
import { FakeAliCloud } from "./ali_api.ts";
import { FakeAws } from "./aws_api.ts";
import { FakeGce } from "./gce_api.ts";
import { FakeTencentCloud } from "./tencent_api.ts";

const [kind, hostname = "127.0.0.1"] = Deno.args;
let env: Record<string, string>;
let routes: () => string[];
switch (kind) {
  case "tencent": {
    const f = new FakeTencentCloud(hostname);
    env = f.env();
    routes = () => f.routes();
    break;
  }
  case "aws": {
    const f = new FakeAws(hostname);
    env = f.env();
    routes = () => f.render();
    break;
  }
  case "gce": {
    const f = FakeGce.start({ hostname });
    env = f.env;
    routes = () => f.render();
    break;
  }
  case "ali": {
    const f = await FakeAliCloud.start({ hostname });
    env = {
      ACCESS_KEY_ID: f.accessKeyId,
      ACCESS_KEY_SECRET: f.accessKeySecret,
      ALIBABA_CLOUD_VPC_ENDPOINT: f.url,
      ALIBABA_CLOUD_METADATA_ENDPOINT: f.url,
    };
    routes = () => f.render();
    break;
  }
  default:
    console.error(`serve.ts: unknown fake cloud ${JSON.stringify(kind)}: use tencent, aws, gce or ali`);
    Deno.exit(2);
}
const control = Deno.serve({ hostname, port: 0, onListen: () => {} }, () => Response.json(routes()));
console.log(JSON.stringify({ env, control: `http://${hostname}:${control.addr.port}` }));

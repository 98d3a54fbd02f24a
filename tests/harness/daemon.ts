/**
 * Runs the bundled `dist/flanneld` as a child process for end-to-end tests: collects its log
 * lines, waits for lines or conditions with deadlines (never fixed sleeps), and stops it.
 */
import { freePort } from "./etcd.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
export const FLANNELD = `${ROOT}dist/flanneld`;
/** PATH for running the binary: its shebang needs the pinned `deno`. */
export const FLANNELD_PATH = () => `${ROOT}tools/deno/node_modules/.bin:${Deno.env.get("PATH") ?? ""}`;

/** Why the bundled binary cannot be used, or undefined. */
export function flanneldMissing(): string | undefined {
  try {
    Deno.statSync(FLANNELD);
    return undefined;
  } catch {
    return `${FLANNELD} is missing: run "deno task bundle" first`;
  }
}

/** Options of {@linkcode Flanneld.start}. */
export interface FlanneldStartOptions {
  /**
   * A command the daemon runs under, e.g. `["ip", "netns", "exec", "<ns>"]` (it must exec, so that
   * the child's pid is the daemon's). The health server is then reached with `curl` under the same
   * prefix, since this process cannot reach another namespace's loopback.
   */
  prefix?: string[];
}

/** A running flanneld. */
export class Flanneld {
  readonly lines: string[] = [];
  readonly healthPort: number;
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<number>;
  readonly #prefix: string[];
  #exit: number | undefined;

  private constructor(child: Deno.ChildProcess, healthPort: number, prefix: string[]) {
    this.#child = child;
    this.healthPort = healthPort;
    this.#prefix = prefix;
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      let buf = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          this.lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      }
      if (buf) this.lines.push(buf);
    };
    const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
    this.#done = child.status.then(async (s) => {
      await pumps;
      this.#exit = s.code;
      return s.code;
    });
  }

  /** Starts flanneld with `args` (a free --healthz-port is added unless given). */
  static async start(
    args: string[],
    env: Record<string, string> = {},
    opts: FlanneldStartOptions = {},
  ): Promise<Flanneld> {
    const given = args.map((a) => /^--?healthz-port=(\d+)$/.exec(a)?.[1]).find((p) => p !== undefined);
    const port = given !== undefined ? Number(given) : await freePort();
    const all = args.some((a) => a.includes("healthz-port"))
      ? args
      : [...args, `--healthz-port=${port}`, "--healthz-ip=127.0.0.1"];
    const path = FLANNELD_PATH();
    const prefix = opts.prefix ?? [];
    const argv = [...prefix, FLANNELD, ...all];
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      env: { ...env, PATH: path },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new Flanneld(child, port, prefix);
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** The exit code once it has exited. */
  get exitCode(): number | undefined {
    return this.#exit;
  }

  /** Resolves with the exit code. */
  exited(timeoutMs = 20_000): Promise<number> {
    return withDeadline(
      this.#done,
      timeoutMs,
      () => `flanneld did not exit within ${timeoutMs} ms\n${this.log()}`,
    );
  }

  /** Waits until a log line matches. */
  async waitFor(re: RegExp, timeoutMs = 20_000): Promise<string> {
    let found: string | undefined;
    await pollUntil(
      () => (found = this.lines.find((l) => re.test(l))) !== undefined || this.#exit !== undefined,
      timeoutMs,
      () => `no log line matching ${re} within ${timeoutMs} ms\n${this.log()}`,
    );
    if (found === undefined) {
      throw new Error(`flanneld exited (${this.#exit}) before logging ${re}\n${this.log()}`);
    }
    return found;
  }

  /** GETs a path of the health server: [status, body]. */
  async http(path: string): Promise<[number, string]> {
    if (this.#prefix.length > 0) return await this.#curl(path);
    const res = await fetch(`http://127.0.0.1:${this.healthPort}${path}`);
    return [res.status, await res.text()];
  }

  /** GET through `curl` under the prefix; throws when curl cannot connect. */
  async #curl(path: string): Promise<[number, string]> {
    const url = `http://127.0.0.1:${this.healthPort}${path}`;
    const argv = [...this.#prefix, "curl", "-s", "-m", "2", "-w", "\n%{http_code}", url];
    const out = await new Deno.Command(argv[0]!, { args: argv.slice(1), stdin: "null", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) throw new Error(`curl ${url} failed with exit code ${out.code}`);
    const i = text.lastIndexOf("\n");
    return [Number(text.slice(i + 1)), text.slice(0, i)];
  }

  /** Waits until /readyz answers 200. */
  async ready(timeoutMs = 20_000): Promise<void> {
    await pollUntil(
      async () => {
        if (this.#exit !== undefined) throw new Error(`flanneld exited with ${this.#exit}\n${this.log()}`);
        try {
          return (await this.http("/readyz"))[0] === 200;
        } catch {
          return false;
        }
      },
      timeoutMs,
      () => `flanneld not ready within ${timeoutMs} ms\n${this.log()}`,
    );
  }

  /** The value of a metric from /metrics. */
  async metric(name: string): Promise<number | undefined> {
    const [, body] = await this.http("/metrics");
    const line = body.split("\n").find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(" ")[1]);
  }

  /** Sends a signal (default SIGTERM) and resolves with the exit code. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<number> {
    if (this.#exit === undefined) {
      try {
        this.#child.kill(signal);
      } catch { /* already gone */ }
    }
    return await this.exited();
  }

  /** The collected log, for failure messages. */
  log(): string {
    return this.lines.map((l) => `    | ${l}`).join("\n");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#exit === undefined) await this.stop("SIGKILL").catch(() => {});
  }
}

/** Polls `cond` every 50 ms until it holds; throws with `why()` after `timeoutMs`. */
export async function pollUntil(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  why: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(why());
    await new Promise((r) => setTimeout(r, 50));
  }
}

function withDeadline<T>(p: Promise<T>, ms: number, why: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(why())), ms))),
  ]).finally(() => clearTimeout(timer));
}

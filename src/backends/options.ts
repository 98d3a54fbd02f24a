/**
 * Reading backend options from net-conf's `Backend` object the way Go's encoding/json does
 * (case-insensitive names, unknown keys ignored), with one-line errors that name the option.
 *
 * @module
 */
import { getField } from "../config/case_insensitive.ts";

/** A bad backend option. */
export class BackendConfigError extends Error {
  override name = "BackendConfigError";
}

/** Reads typed options from a backend object; errors start with `prefix` (upstream's text). */
export class OptionReader {
  constructor(readonly obj: Record<string, unknown>, readonly prefix: string) {}

  #fail(name: string, v: unknown, want: string): never {
    throw new BackendConfigError(
      `${this.prefix}: Backend "${name}" is ${JSON.stringify(v)}, must be ${want}`,
    );
  }

  int(name: string, def: number, min = 0, max = 0xffffffff): number {
    const v = getField(this.obj, name);
    if (v === undefined || v === null) return def;
    if (typeof v !== "number" || !Number.isInteger(v)) this.#fail(name, v, "an integer");
    if (v < min || v > max) this.#fail(name, v, `between ${min} and ${max}`);
    return v;
  }

  bool(name: string, def = false): boolean {
    const v = getField(this.obj, name);
    if (v === undefined || v === null) return def;
    if (typeof v !== "boolean") this.#fail(name, v, "true or false");
    return v;
  }

  string(name: string, def = ""): string {
    const v = getField(this.obj, name);
    if (v === undefined || v === null) return def;
    if (typeof v !== "string") this.#fail(name, v, "a string");
    return v;
  }
}

/**
 * Errors of the etcd client. Callers classify them by class and by {@linkcode EtcdError.code}
 * (the gRPC status code etcd's gateway reports), never by message text.
 *
 * @module
 */

/**
 * The gRPC status codes etcd uses, as its JSON gateway reports them in `"code"`.
 * Names follow `google.golang.org/grpc/codes`.
 */
export const GrpcCode = {
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;

/** Options of an {@linkcode EtcdError}. */
export interface EtcdErrorOptions extends ErrorOptions {
  /** The gRPC status code, when etcd said one. */
  code?: number | undefined;
}

/**
 * An error reported by etcd, or a failure to talk to it.
 *
 * @example
 * ```ts
 * import { EtcdError, GrpcCode } from "./errors.ts";
 * const err = new EtcdError("Cannot revoke etcd lease 7: requested lease not found", {
 *   code: GrpcCode.NotFound,
 * });
 * console.assert(err.code === GrpcCode.NotFound);
 * ```
 */
export class EtcdError extends Error {
  override name = "EtcdError";
  /** The gRPC status code etcd reported ({@linkcode GrpcCode}); undefined when it gave none. */
  readonly code: number | undefined;

  constructor(message: string, options: EtcdErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code;
  }
}

/**
 * No etcd endpoint could be reached, or a watch stream broke. Callers retry with backoff and keep
 * the data path up.
 */
export class EtcdUnavailableError extends EtcdError {
  override name = "EtcdUnavailableError";
  /** The endpoints that were tried, in order. */
  readonly endpoints: readonly string[];

  constructor(message: string, endpoints: readonly string[], options: EtcdErrorOptions = {}) {
    super(message, { code: options.code ?? GrpcCode.Unavailable, cause: options.cause });
    this.endpoints = endpoints;
  }
}

/**
 * A watch asked for a revision that etcd has already compacted: re-list, then watch from the new
 * revision.
 */
export class EtcdCompactedError extends EtcdError {
  override name = "EtcdCompactedError";
  /** The oldest revision etcd still has; watch from here or later. */
  readonly compactRevision: bigint;

  constructor(message: string, compactRevision: bigint, options: ErrorOptions = {}) {
    super(message, { code: GrpcCode.OutOfRange, cause: options.cause });
    this.compactRevision = compactRevision;
  }
}

const codeByName: ReadonlyMap<string, number> = new Map(Object.entries(GrpcCode));

/**
 * The gRPC code in a status rendered by grpc-go as `rpc error: code = <Name> desc = <text>`, which
 * is how etcd's watch reports `cancel_reason`. The code name is a fixed token of that format.
 */
export function grpcCodeOfStatusText(text: string): number | undefined {
  const m = /^rpc error: code = (\w+) desc = /.exec(text);
  return m?.[1] === undefined ? undefined : codeByName.get(m[1]);
}

/**
 * Linux errno numbers and names (include/uapi/asm-generic/errno-base.h and errno.h), for the
 * errors netlink answers with. Classify by errno, never by message text.
 *
 * @module
 */

/** errno → name, for the values netlink operations return. */
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  28: "ENOSPC",
  34: "ERANGE",
  40: "ELOOP",
  61: "ENODATA",
  71: "EPROTO",
  75: "EOVERFLOW",
  90: "EMSGSIZE",
  92: "ENOPROTOOPT",
  93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  105: "ENOBUFS",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  113: "EHOSTUNREACH",
  114: "EALREADY",
  115: "EINPROGRESS",
};

/** Human text for an errno, as strerror(3) gives it for the common ones. */
export const ERRNO_TEXT: Readonly<Record<string, string>> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  ESRCH: "No such process",
  EBUSY: "Device or resource busy",
  EEXIST: "File exists",
  ENODEV: "No such device",
  EINVAL: "Invalid argument",
  ENOBUFS: "No buffer space available",
  EOPNOTSUPP: "Operation not supported",
  EAFNOSUPPORT: "Address family not supported by protocol",
  EADDRNOTAVAIL: "Cannot assign requested address",
  ENETUNREACH: "Network is unreachable",
  EHOSTUNREACH: "No route to host",
  EACCES: "Permission denied",
  ERANGE: "Numerical result out of range",
  EMSGSIZE: "Message too long",
  EPROTONOSUPPORT: "Protocol not supported",
  EAGAIN: "Resource temporarily unavailable",
  EINTR: "Interrupted system call",
  ENOMEM: "Cannot allocate memory",
};

/** The name of an errno (`EEXIST`), or `errno <n>` for one not in the table. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** The errno of a name, or undefined. */
export function errnoOf(name: string): number | undefined {
  for (const [n, v] of Object.entries(ERRNO_NAMES)) if (v === name) return Number(n);
  return undefined;
}

/** The version `--version` prints (upstream prints its git tag, e.g. `v0.28.9`). */
export const VERSION = "v0.1.0";

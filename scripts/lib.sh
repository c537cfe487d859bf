# Shared settings for the project's scripts. Sourced, not run.

# Everything expensive lives outside the clone so that a fresh clone (CI's) reuses it:
# cargo's target dir, the Go build cache and the built control-plane binaries.
: "${LGO_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/lightsail-gui-operator}"
export LGO_CACHE
: "${CARGO_TARGET_DIR:=$LGO_CACHE/target}"
export CARGO_TARGET_DIR

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

step() { printf '==> %s\n' "$*" >&2; }
fail() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
# A loopback port free right now (the kernel picks it); callers bind it at once.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Run from a test, a script inherits what cargo sets for test binaries (CARGO_MANIFEST_DIR,
# CARGO_PKG_*, ...). Some build scripts (ring's) watch those: a nested `cargo build` would see
# them change and rebuild half the tree. Call this before such a build.
forget_cargo_test_env() {
  local name
  for name in $(compgen -e); do
    case $name in
      CARGO_MANIFEST_DIR | CARGO_MANIFEST_PATH | CARGO_PKG_* | CARGO_CRATE_NAME | CARGO_BIN_EXE_* | \
        CARGO_PRIMARY_PACKAGE | CARGO_TARGET_TMPDIR | CARGO_RUSTC_CURRENT_DIR | CARGO_BIN_NAME | \
        SOURCE_DATE_EPOCH) unset "$name" ;;
    esac
  done
}

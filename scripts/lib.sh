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

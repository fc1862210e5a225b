#!/usr/bin/env bash
# Builds the workspace with the oldest Rust it claims to support: the rust-version of
# Cargo.toml's [workspace.package]. tests/rust_version.rs already checks what locked
# packages declare; only a build with that toolchain catches a package that declares
# nothing and still needs a newer compiler (rustyline 19 needs 1.95 and declares nothing).
#
# Usage: scripts/check-msrv.sh [--install | --if-installed]
#   (none)          fail if the toolchain is not installed, saying how to install it
#   --install       install it first with rustup (a minimal profile)
#   --if-installed  skip, with a note, when it is missing or is the toolchain cargo already
#                   uses (CI: the main build then proves it)
# Exits 0 when the workspace checks with that toolchain, or was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
  ""|--install|--if-installed) ;;
  *) echo "usage: scripts/check-msrv.sh [--install | --if-installed]" >&2; exit 2 ;;
esac

# The rust-version line of [workspace.package], e.g. 1.95.
msrv=$(awk '
  /^\[/ { section = $0 }
  section == "[workspace.package]" && $1 == "rust-version" { gsub(/"/, "", $3); print $3 }
' Cargo.toml)
[ -n "$msrv" ] || { echo "check-msrv.sh: no rust-version in [workspace.package] of Cargo.toml" >&2; exit 2; }
if ! command -v rustup >/dev/null; then
    if [ "$mode" = --if-installed ]; then
        echo "check-msrv.sh: skipped: no rustup to select Rust $msrv with"
        exit 0
    fi
    echo "check-msrv.sh: needs rustup to select Rust $msrv" >&2
    exit 2
fi

# An installed toolchain of that version: "1.95" itself, or a patch release "1.95.N".
installed() {
    rustup toolchain list | awk '{ print $1 }' \
        | grep -E "^${msrv//./\\.}(\.[0-9]+)?(-|$)" | head -n 1 || true
}
toolchain=$(installed)
if [ -z "$toolchain" ]; then
    case "$mode" in
      --install)
        rustup toolchain install "$msrv" --profile minimal
        toolchain=$(installed) ;;
      --if-installed)
        echo "check-msrv.sh: skipped: Rust $msrv (the declared rust-version) is not installed" \
             "(rustup toolchain install $msrv --profile minimal)"
        exit 0 ;;
      *)
        echo "check-msrv.sh: Rust $msrv (the declared rust-version) is not installed:" \
             "rustup toolchain install $msrv --profile minimal, or pass --install" >&2
        exit 1 ;;
    esac
fi

if [ "$mode" = --if-installed ] \
   && [ "$(rustup run "$toolchain" rustc --version)" = "$(rustc --version)" ]; then
    echo "check-msrv.sh: skipped: the active toolchain is already Rust $msrv ($toolchain)"
    exit 0
fi

# A target directory of its own, so the main build's artefacts stay as they are.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/msrv"
echo "check-msrv.sh: checking the workspace with $(rustup run "$toolchain" rustc --version)"
rustup run "$toolchain" cargo check --workspace --all-targets --locked

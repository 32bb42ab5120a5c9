#!/usr/bin/env bash
# Installs what building and testing ferry needs on a fresh machine. Safe to
# run again: every step checks first.
set -euo pipefail

if ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed; install Rust with rustup first" >&2
    exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 Rust target (plugins build for it)"
    rustup target add wasm32-wasip2
fi

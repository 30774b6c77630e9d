#!/usr/bin/env bash
# The project's test command: formatting, lints, then every test (unit, engine integration
# against real registries, end-to-end against real control planes). README.md gives this.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
# File and function sizes, module cycles (a ratchet: scripts/structure-allow.txt only shrinks).
python3 scripts/structure.py
cargo clippy --all-targets --locked -- -D warnings
# Each control plane and registry test starts real processes; two at a time fit 2 cores.
cargo test --locked --no-fail-fast -- --test-threads="${FLOTILLA_TEST_THREADS:-2}"

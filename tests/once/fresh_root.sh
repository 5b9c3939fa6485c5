#!/usr/bin/env bash
# The README's promise on a fresh Debian 12 machine: `make deps` installs
# every package the tests need.  scripts/fresh-root-check.sh runs it in a
# debootstrap minbase root (cached) and checks that every command the test
# scripts and the OCF agent run is there, and that the project builds.
set -euo pipefail
cd "$ROOT"
pkgs=$(make -s --no-print-directory print-deb-packages)
[ -n "$pkgs" ] || { echo "no DEB_PACKAGES from the Makefile"; exit 1; }
# shellcheck disable=SC2086
scripts/fresh-root-check.sh $pkgs

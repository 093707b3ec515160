#!/usr/bin/env bash
# Installs the Debian 12 packages flamegate needs to build (and, with --test, to run its
# tests; with --bench, also the benchmarks). Installs only what is missing; needs root (or
# sudo) when something is missing.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config
  libmicrohttpd-dev libnghttp2-dev libcurl4-openssl-dev libyaml-dev libjansson-dev
  libprotobuf-c-dev protobuf-c-compiler zlib1g-dev libssl-dev libcrypt-dev)
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev python3 python3-protobuf protobuf-compiler
  curl golang-go python3-grpcio python3-grpc-tools nghttp2-client openssl debootstrap
  chromium chromium-driver python3-selenium)

# The agent overhead bench (make bench-agent) compares against gperftools; tests never need it.
bench_pkgs=(libgoogle-perftools-dev)

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
  want+=("${test_pkgs[@]}")
fi
if [ "${1:-}" = "--bench" ]; then
  want+=("${test_pkgs[@]}" "${bench_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

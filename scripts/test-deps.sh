#!/usr/bin/env bash
# Installs the programs the tests drive, when they are missing: sipp (Debian
# package sip-tester) as carrier and phone, baresip as a registering
# softphone, tcpdump to count RTP on loopback.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing test dependencies: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${need[@]}"

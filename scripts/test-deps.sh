#!/usr/bin/env bash
# Installs the programs the tests drive, when they are missing: sipp (Debian
# package sip-tester) as carrier and phone, baresip as a registering
# softphone, tcpdump to count RTP on loopback, nftables and iproute2 to lose
# packets in a network namespace of the loss test's own, Chromium and Firefox ESR as
# the agent's browser, and Playwright and Puppeteer (npm playwright-core,
# puppeteer-core) to drive them.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || need+=(firefox-esr)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing test dependencies: ${need[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq "${need[@]}"
fi
# The drivers use Debian's browsers; neither downloads one.
browser_dir="$(dirname "$0")/../test/browser"
if [ ! -d "$browser_dir/node_modules/playwright-core" ] || [ ! -d "$browser_dir/node_modules/puppeteer-core" ]; then
	echo "installing playwright-core and puppeteer-core for the browser tests"
	npm ci --prefix "$browser_dir" --no-audit --no-fund --loglevel=error
fi

#!/usr/bin/env bash
# Debian 12's sipp is built without TLS, so the SIP-over-TLS tests use
# Debian 13's (3.7.3, built with wolfSSL) with the libraries it was built
# against, unpacked into test/.tools/sipp-tls and started through their own
# loader: nothing of the system is replaced. Prints the wrapper's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/test/.tools/sipp-tls"
if [ -x "$dest/sipp" ] && case "$("$dest/sipp" -v 2>&1 || true)" in *-TLS*) true ;; *) false ;; esac; then
	echo "$dest/sipp"
	exit 0
fi
echo "fetching sipp with TLS (Debian 13 sip-tester) into $dest" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
cat >"$work/trixie.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt=(-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
	-o "Dir::Etc::sourcelist=$work/trixie.sources" -o "Dir::Etc::sourceparts=-"
	-o "APT::Sandbox::User=root" -qq)
apt-get "${apt[@]}" update
(cd "$work/debs" && apt-get "${apt[@]}" download sip-tester libc6 libgcc-s1 libstdc++6 \
	libgsl28 libgslcblas0 libncursesw6 libtinfo6 libpcap0.8t64 libsctp1 libwolfssl42t64 \
	libdbus-1-3 libsystemd0 libcap2 libgcrypt20 libgpg-error0 liblz4-1 liblzma5 libzstd1)
rm -rf "$dest"
mkdir -p "$dest/root"
for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$dest/root"; done
cat >"$dest/sipp" <<'WRAPPER'
#!/bin/sh
here="$(dirname "$(readlink -f "$0")")/root"
exec "$here/usr/lib64/ld-linux-x86-64.so.2" --library-path "$here/usr/lib/x86_64-linux-gnu" "$here/usr/bin/sipp" "$@"
WRAPPER
chmod +x "$dest/sipp"
case "$("$dest/sipp" -v 2>&1 || true)" in *-TLS*) true ;; *) false ;; esac || { echo "the sipp in $dest has no TLS" >&2; exit 1; }
echo "$dest/sipp"

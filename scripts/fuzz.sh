#!/usr/bin/env bash
# fuzz.sh: runs every fuzz target for FUZZTIME each (default 5s), one after
# the other; `make fuzz` runs them for a minute each. It fails on a crash,
# and also when a Fuzz function in the tree is missing from TARGETS, or a
# listed one no longer exists, so that no target is silently left out.
#
# Adding a target: write `func FuzzName(f *testing.F)` in a *_test.go file
# and add a line "PACKAGE FuzzName" to TARGETS, PACKAGE as `go test` takes
# it (./media). Its committed corpus is PACKAGE/testdata/fuzz/FuzzName/.
#
# Environment: FUZZTIME (5s), FUZZMINIMIZETIME (10s: how long a new input is
# minimized; the default of a minute would take most of a short run), GO.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME="${FUZZTIME:-5s}"
FUZZMINIMIZETIME="${FUZZMINIMIZETIME:-10s}"
GO="${GO:-go}"

TARGETS="
./config     FuzzAttribution
./config     FuzzLoad
./media      FuzzCheckAnswer
./media      FuzzDigitWriter
./media      FuzzDTMFReceiver
./media      FuzzEventDetector
./media      FuzzParseDTMFInfo
./media      FuzzParseSDP
./media      FuzzRTPPayload
./sip        FuzzDatagram
./softphone  FuzzSocket
"

listed="$(awk 'NF { print $1, $2 }' <<<"$TARGETS" | sort)"
found="$(grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*' . |
	sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz.*)$|\1 \2|' | sort)"
if [ "$listed" != "$found" ]; then
	echo "fuzz.sh: TARGETS does not match the Fuzz functions in the tree:" >&2
	diff <(echo "$listed") <(echo "$found") | sed -n 's/^< /  listed, not in the tree: /p; s/^> /  in the tree, not listed: /p' >&2
	exit 1
fi

# Every target runs even after one failed, so that one run shows them all.
failed=""
while read -r pkg name; do
	[ -n "$pkg" ] || continue
	echo "== $pkg $name ($FUZZTIME)"
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg"; then
		failed="$failed $pkg:$name"
	fi
done <<<"$TARGETS"
if [ -n "$failed" ]; then
	echo "fuzz.sh: failed:$failed (failing inputs are in PACKAGE/testdata/fuzz/)" >&2
	exit 1
fi

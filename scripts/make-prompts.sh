#!/usr/bin/env bash
# Regenerates the default IVR prompts in prompts/: speech with espeak-ng,
# hold music with sox's synthesiser, all as 8 kHz mono 16-bit PCM WAV, the
# call's own rate, so nothing is resampled at load. The output is
# repeatable (sox -R), so running this again without changes leaves git
# with nothing to commit.
#
#   scripts/make-prompts.sh            # needs: apt-get install -y espeak-ng sox
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in espeak-ng sox; do
	command -v "$tool" >/dev/null || { echo "make-prompts: $tool is missing: apt-get install -y espeak-ng sox" >&2; exit 1; }
done

out=prompts
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

# A female US voice, a little slower than espeak-ng's default: callers
# hear it through a narrowband phone line.
voice=en-us+f3
speed=145

# say NAME TEXT: speak, then make it telephone audio. The high-pass removes
# rumble a handset cannot reproduce, the normalisation leaves headroom for
# G.711, and the short silences keep the first syllable from being clipped
# while the far end's jitter buffer settles.
say() {
	local name=$1 text=$2
	espeak-ng -v "$voice" -s "$speed" -w "$tmp/$name.raw.wav" "$text"
	sox -R "$tmp/$name.raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/$name.wav" \
		highpass 120 norm -3 pad 0.2 0.3 rate -v 8000
}

say welcome "Thank you for calling. Your call is important to us."
say sales-menu "For sales, press 1. For support, press 2."
say invalid "Sorry, that is not a valid choice."
say goodbye "Goodbye."
say recording-notice "This call may be recorded for quality and training."
say recording-consent "To allow this call to be recorded, press 1. Otherwise, press 2."
say closed "Thank you for calling. We are closed right now."
say voicemail-greeting "Nobody can take your call. Please leave a message after the tone."

# The tone after the voicemail greeting: 440 Hz for half a second, the
# usual cue to start speaking, appended to the greeting.
sox -R -n -r 8000 -c 1 -b 16 -e signed-integer "$tmp/beep.wav" synth 0.5 sine 440 fade q 0.01 0.5 0.01 vol 0.5
sox -R "$out/voicemail-greeting.wav" "$tmp/beep.wav" "$tmp/greeting.wav"
mv "$tmp/greeting.wav" "$out/voicemail-greeting.wav"

# Hold music: a plucked arpeggio over a soft pad, C - A minor - F - G, four
# bars of 2.5 s, so the loop is 10 s and ends on the dominant, leading back
# into the first chord when it repeats. Each note decays fully within its
# own slot, so the loop has no click at the seam. The low-pass takes the
# edge off the plucks' upper harmonics, the high-pass their DC offset.
rate=48000
note=0.3125 # eight notes a bar
chords=(
	"C5 E5 G5 C6 E6 C6 G5 E5"
	"A4 C5 E5 A5 C6 A5 E5 C5"
	"F4 A4 C5 F5 A5 F5 C5 A4"
	"G4 B4 D5 G5 B5 G5 D5 B4"
)
# The pad stays above 250 Hz: handsets and the PSTN roll off the bass, so a
# lower pad would simply not be heard.
pads=("C4 E4 G4" "A3 C4 E4" "F3 A3 C4" "G3 B3 D4")
i=0
notes=()
for bar in "${!chords[@]}"; do
	for n in ${chords[$bar]}; do
		f=$(printf '%s/n%02d.wav' "$tmp" "$i")
		sox -R -n -r $rate -c 1 -b 16 "$f" synth $note pluck "$n" fade q 0.005 $note 0.2 vol 0.6
		notes+=("$f")
		i=$((i + 1))
	done
	read -r a b c <<<"${pads[$bar]}"
	sox -R -n -r $rate -c 1 -b 16 "$tmp/pad$bar.wav" \
		synth 2.5 sine "$a" synth 2.5 sine mix "$b" synth 2.5 sine mix "$c" \
		fade h 0.4 2.5 0.4 vol 0.12
done
sox -R "${notes[@]}" "$tmp/arp.wav"
sox -R "$tmp"/pad?.wav "$tmp/pad.wav"
sox -R -m "$tmp/arp.wav" "$tmp/pad.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/hold-music.wav" \
	highpass 60 lowpass 3000 norm -6 rate -v 8000

for f in "$out"/*.wav; do
	printf '%-28s %s\n' "$f" "$(soxi -d "$f")"
done

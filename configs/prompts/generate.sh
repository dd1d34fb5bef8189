#!/usr/bin/env bash
# Regenerates the demo prompts: 8 kHz mono 16-bit PCM WAV, speech from
# espeak-ng, hold music synthesised with sox (no speech, no copyright).
# Needs: espeak-ng, sox (Debian packages espeak-ng, sox).
# Run from anywhere:  bash configs/prompts/generate.sh   (or: make prompts)
# The WAVs are committed, so a fresh machine needs neither tool.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# speak NAME TEXT: synthesise, resample to 8 kHz mono, normalise to -3 dBFS,
# trim silence to 50 ms at both ends.
speak() {
  espeak-ng -v en-us -s 150 -p 45 -w "$tmp/$1.wav" "$2"
  sox -D "$tmp/$1.wav" -r 8000 -c 1 -b 16 -e signed-integer "$1.wav" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
    pad 0.05 0.05 norm -3
}

speak welcome            "Thank you for calling ivrd support."
speak recording_notice   "This call may be recorded for quality."
speak welcome_back       "Welcome back."
speak main_menu          "For billing, press 1. For technical support, press 2. For anyone else, press 0. To end this call, press 9."
speak invalid            "Sorry, that is not a valid choice."
speak goodbye            "Thank you for calling. Goodbye."
speak you_are_caller     "You are caller number"
speak ewt_intro          "Your estimated wait time is about"
speak minute             "minute"
speak minutes            "minutes"
speak less_than_a_minute "less than a minute"
speak please_hold        "Please continue to hold."
speak cannot_take_call   "We cannot take your call right now. Please call again later."
speak call_back_later    "We are receiving too many calls from your number. Please call back later."
speak connecting         "Please hold while we connect you."
speak queue_options      "To be called back instead of waiting, press 1. To return to the main menu, press star."
speak callback_at        "We will call you back at"
speak callback_confirm   "To confirm this number, press 1. To enter a different number, press 2."
speak callback_enter     "Please enter the number we should call, then press pound."
speak callback_done      "Thank you. We will call you back as soon as an agent is free. Goodbye."
speak num_0              "zero"
speak agent_lost         "We are sorry, we lost the connection to your agent. Please stay on the line: you will be answered next."

ones=(zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen)
tens=("" "" twenty thirty forty fifty)
for n in $(seq 1 59); do
  if [ "$n" -lt 20 ]; then words=${ones[$n]}
  elif [ $((n % 10)) -eq 0 ]; then words=${tens[$((n / 10))]}
  else words="${tens[$((n / 10))]} ${ones[$((n % 10))]}"; fi
  speak "num_$n" "$words"
done

# Hold music: a slow I–vi–IV–V progression of plucked triads (C, Am, F, G),
# 5 s per chord, 20 s in all, with short fades so the loop joins cleanly.
# Plucks decay within the chord; no two notes form a DTMF row/column pair.
chord() { # name freq1 freq2 freq3
  sox -D -n -r 8000 -c 1 -b 16 "$tmp/$1.wav" synth 5 \
    pluck "$2" pluck "$3" pluck "$4" remix - fade q 0.05 5 0.4 gain -n -14
}
chord c  261.63 329.63 392.00
chord am 220.00 261.63 329.63
chord f  174.61 220.00 261.63
chord g  196.00 246.94 293.66
sox -D "$tmp/c.wav" "$tmp/am.wav" "$tmp/f.wav" "$tmp/g.wav" -r 8000 -c 1 -b 16 hold_music.wav fade t 0.3 20 0.3

for f in *.wav; do echo "$(soxi -r "$f") Hz, $(soxi -c "$f") ch, $(soxi -b "$f") bit"; done | sort | uniq -c

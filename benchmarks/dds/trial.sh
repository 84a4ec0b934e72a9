#!/usr/bin/env bash
# Discovery trials: TRIALS (40) times, a publisher and a subscriber process started together (after STAGGER seconds);
# a trial fails when the subscriber gets nothing within 5 s. With OBSERVER=1 a third participant is up first
# (as a test's probe is). The DDS setting comes from the environment (FASTDDS_BUILTIN_TRANSPORTS or
# FASTDDS_DEFAULT_PROFILES_FILE); WAIT="--wait 6" runs the first version. Usage: trial.sh LABEL [STAGGER] [OBSERVER]
cd "$(dirname "$0")/../.."
label=$1; stagger=${2:-0}; fails=0; here=benchmarks/dds; log=$(mktemp)
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-100}
if [ "${3:-0}" = 1 ]; then .venv/bin/python $here/observer.py > /dev/null 2>&1 & obs=$!; sleep 2; fi
trials=${TRIALS:-40}
for i in $(seq 1 "$trials"); do
  .venv/bin/python $here/pair.py pub $WAIT > /dev/null 2>&1 & pub=$!; sleep "$stagger"
  .venv/bin/python $here/pair.py sub $WAIT > "$log" 2>&1; wait "$pub"
  grep -q "got 1" "$log" || fails=$((fails+1))
done
[ -n "${obs:-}" ] && kill "$obs"
echo "$label stagger=$stagger observer=${3:-0} fails=$fails/$trials"

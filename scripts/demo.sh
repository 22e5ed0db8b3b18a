#!/usr/bin/env bash
# make run: replay the val scenes through the agent, publishing to a local
# Mosquitto, and show what a subscriber receives.
set -euo pipefail
SHARED=${SHARED:-../shared}
BIN=${BIN:-.venv/bin}
DATA="$SHARED/data/larxel-face-mask"
SCENES=build/val-scenes
PORT=1883  # the broker port config/agent.yaml names

if [ ! -f "$DATA/splits/val.txt" ]; then
  echo "make run: the dataset is missing at $DATA (set SHARED=...)" >&2
  exit 66
fi
mkdir -p "$SCENES"
# The shipped config finds YuNet at ../shared; point it at SHARED wherever it is.
CONFIG=build/demo.yaml
sed "s#\.\./\.\./shared/#$(cd "$SHARED" && pwd)/#" config/agent.yaml > "$CONFIG"
while read -r name; do
  ln -sf "$(cd "$DATA/images" && pwd)/$name.png" "$SCENES/$name.png"
done < "$DATA/splits/val.txt"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "== using the MQTT broker already on 127.0.0.1:$PORT"
elif command -v mosquitto >/dev/null; then
  conf=build/mosquitto.conf
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$PORT" > "$conf"
  [ "$(id -u)" = 0 ] && echo "user root" >> "$conf"
  mosquitto -c "$conf" > build/mosquitto.log 2>&1 &
  pids+=($!)
  sleep 0.3
  echo "== started Mosquitto on 127.0.0.1:$PORT (log: build/mosquitto.log)"
else
  echo "== no mosquitto here (apt-get install mosquitto): the agent will keep"
  echo "   retrying the broker while it runs"
fi

# Process substitution, so that $! is the watcher itself and cleanup stops it.
"$BIN/edge-agent" watch --config "$CONFIG" \
  > >(sed -u 's/^/[subscriber] /') &
pids+=($!)
sleep 0.5
"$BIN/edge-agent" run --config "$CONFIG" --source "$SCENES" "$@"
sleep 0.5
echo "== the kiosk screen was drawn to build/screen/latest.png (now 'Out of service')"

#!/usr/bin/env bash
# make install: the agent as a systemd service on a Raspberry Pi-class device.
#
#   PREFIX       virtual environment and YuNet (default /opt/mask-edge)
#   DESTDIR      stage every file under this folder instead of /; the steps
#                that change the running system (user, systemctl) are skipped
#   MODEL        the packaged classifier to install (default models/mask-classifier)
#   YUNET_FILE   a local copy of YuNet instead of the download; checked by sha256
#   PYTHON       the interpreter for the virtual environment (default python3)
#   PIP_ARGS     extra pip install arguments (e.g. --no-deps for a staging test)
#   CONFIG_PYTHON  interpreter that writes the config (default: the new venv's)
#
# The config (/etc/mask-edge/agent.yaml) is never overwritten: a new one is
# written beside it as agent.yaml.new.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/opt/mask-edge}
DESTDIR=${DESTDIR:-}
MODEL=${MODEL:-models/mask-classifier}
YUNET_FILE=${YUNET_FILE:-}
PYTHON=${PYTHON:-python3}
PIP_ARGS=${PIP_ARGS:-}
CONFIG_PYTHON=${CONFIG_PYTHON:-$DESTDIR$PREFIX/bin/python}

# Fixed by the unit: StateDirectory=mask-edge, the config in /etc/mask-edge.
CONFIG_DIR=/etc/mask-edge
STATE_DIR=/var/lib/mask-edge
UNIT_DIR=/etc/systemd/system
SERVICE_USER=mask-edge
DEVICE_GROUPS=(video gpio render)

YUNET_NAME=face_detection_yunet_2023mar.onnx
YUNET_URL=https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/$YUNET_NAME
YUNET_SHA256=8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4

step() { echo "== $*"; }
skip() { echo "   skipped: $*"; }
fail() {
  echo "make install: $*" >&2
  exit 1
}

# Checks first, so a missing piece stops the install before it changes anything.
[ -n "$DESTDIR" ] || [ "$(id -u)" = 0 ] || fail "run as root: sudo make install"
[ -f "$MODEL/model.tflite" ] && [ -f "$MODEL/manifest.json" ] ||
  fail "no packaged model in $MODEL (model.tflite, manifest.json): run 'make model' or set MODEL=..."
version=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
  "$MODEL/manifest.json") || fail "$MODEL/manifest.json has no version"
[[ "$version" =~ ^[A-Za-z0-9._-]+$ ]] || fail "model version '$version' is no folder name"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "YuNet face detector (sha256 ${YUNET_SHA256:0:12}...)"
if [ -z "$YUNET_FILE" ]; then
  YUNET_FILE=$work/$YUNET_NAME
  echo "   downloading $YUNET_URL"
  curl -fsSL --retry 3 -o "$YUNET_FILE" "$YUNET_URL" ||
    fail "YuNet download failed; copy the file here and set YUNET_FILE=path"
fi
echo "$YUNET_SHA256  $YUNET_FILE" | sha256sum --check --quiet - ||
  fail "$YUNET_FILE is not YuNet 2023mar (sha256 differs); delete it and try again"
install -D -m 0644 "$YUNET_FILE" "$DESTDIR$PREFIX/models/$YUNET_NAME"

step "Python environment in $PREFIX"
if [ ! -x "$DESTDIR$PREFIX/bin/python" ]; then
  # System packages stay visible: Raspberry Pi OS ships the GPIO back-ends
  # (python3-lgpio) as Debian packages.
  "$PYTHON" -m venv --system-site-packages "$DESTDIR$PREFIX"
fi
# shellcheck disable=SC2086  # PIP_ARGS is a list of arguments
"$DESTDIR$PREFIX/bin/pip" install --quiet --disable-pip-version-check $PIP_ARGS ".[gpio]"
install -m 0644 README.md "$DESTDIR$PREFIX/README.md"

step "Classifier $version in $STATE_DIR/models"
models=$DESTDIR$STATE_DIR/models
install -d -m 0750 "$models/$version"
cp -R "$MODEL"/. "$models/$version/"
chmod -R u=rwX,g=rX,o= "$models/$version"
ln -sfn "$version" "$models/current"

step "Config $CONFIG_DIR/agent.yaml"
config=$DESTDIR$CONFIG_DIR/agent.yaml
target=$config
[ -e "$config" ] && target=$config.new
install -d -m 0755 "$DESTDIR$CONFIG_DIR"
"$CONFIG_PYTHON" scripts/device_config.py config/agent.yaml "$target" \
  "state_dir=$STATE_DIR" \
  "detector.model=$PREFIX/models/$YUNET_NAME" \
  "classifier.model_dir=$STATE_DIR/models/current"
chmod 0640 "$target"
[ "$target" = "$config" ] ||
  echo "   kept your $CONFIG_DIR/agent.yaml; the new defaults are in agent.yaml.new"

step "systemd unit $UNIT_DIR/edge-agent.service"
sed "s|/opt/mask-edge|$PREFIX|g" systemd/edge-agent.service >"$work/edge-agent.service"
install -D -m 0644 "$work/edge-agent.service" "$DESTDIR$UNIT_DIR/edge-agent.service"

step "User $SERVICE_USER and device groups ${DEVICE_GROUPS[*]}"
if [ -n "$DESTDIR" ]; then
  skip "DESTDIR is set; create them on the device"
else
  for group in "${DEVICE_GROUPS[@]}"; do
    # The unit's SupplementaryGroups= refuses to start if one is missing.
    getent group "$group" >/dev/null || groupadd --system "$group"
  done
  id "$SERVICE_USER" >/dev/null 2>&1 ||
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
  chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
  chgrp "$SERVICE_USER" "$target"
fi

step "Enable edge-agent.service"
if [ -n "$DESTDIR" ]; then
  skip "DESTDIR is set"
elif [ ! -d /run/systemd/system ]; then
  skip "PID 1 is not systemd; on the device run: systemctl daemon-reload && systemctl enable edge-agent"
else
  systemctl daemon-reload
  systemctl enable edge-agent.service
  systemctl try-restart edge-agent.service # an upgrade takes effect at once
fi

echo "Installed. Next: edit $CONFIG_DIR/agent.yaml (mqtt.host at least), then"
echo "  $PREFIX/bin/edge-agent check-config $CONFIG_DIR/agent.yaml"
echo "  systemctl start edge-agent && journalctl -u edge-agent -f"

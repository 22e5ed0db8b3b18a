"""The device daemon of mask-edge: camera to compliance events over MQTT."""

"""Reusable test helpers: a real Mosquitto broker and an MQTT subscriber."""

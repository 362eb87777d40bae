"""Fault injection against a real Herald stack (`make chaos`); see chaos/__main__.py and chaos/scenarios.py."""

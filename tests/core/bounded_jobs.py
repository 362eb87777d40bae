"""Jobs for tests/core/test_bounded.py, run inside a bounded process (no Django here)."""

import ctypes
import time

from core.bounded_child import JobFailed


def echo(payload):
    return payload


def sleep(payload):
    time.sleep(payload["seconds"])
    return "slept"


def segfault(payload):
    ctypes.string_at(0)


def allocate(payload):
    return len(bytearray(payload["bytes"]))


def refuse(payload):
    raise JobFailed("not this one", field=payload["field"])

"""Marks on the run's timeline (``--perfetto FILE``): slices, instants and counters.

``Track.thread(pid, name="")``, ``Track.process(pid, name)``, ``Track.global_(name)``; times are
trace-clock nanoseconds (``ev.ts``); ``args`` are pairs or a dict of bool/int/float/str.
"""

from wit_world.imports import timeline as _tl

from . import _values

__all__ = ["Track", "enabled", "slice", "begin", "end", "instant", "counter"]


class Track:
    """Where marks go: a thread's, a process's or the plugin's own (global) row."""

    @staticmethod
    def thread(pid, name=""):
        return _tl.Track(_tl.Scope_Thread(pid), name)

    @staticmethod
    def process(pid, name=""):
        return _tl.Track(_tl.Scope_Process(pid), name)

    @staticmethod
    def global_(name=""):
        return _tl.Track(_tl.Scope_Global(), name)


_enabled = None


def enabled():
    """Whether marks are kept (the run writes a timeline); fixed for the run."""
    global _enabled
    if _enabled is None:
        _enabled = _tl.enabled()
    return _enabled


def slice(track, name, ts, dur, args=None):  # noqa: A001
    _tl.slice(track, name, ts, dur, _values(args, {}))


def begin(track, name, ts, args=None):
    _tl.begin(track, name, ts, _values(args, {}))


def end(track, ts):
    _tl.end(track, ts)


def instant(track, name, ts, args=None):
    _tl.instant(track, name, ts, _values(args, {}))


def counter(track, ts, value):
    _tl.counter(track, ts, float(value))

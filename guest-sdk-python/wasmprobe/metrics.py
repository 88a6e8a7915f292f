"""Metrics for Prometheus: counters, gauges and histograms with labels, declared in ``init`` and
updated in bulk (the Rust SDK's ``wasmprobe_guest::metrics``). Updates are buffered here and
sent to the host in one call at the end of each batch (the SDK does it after ``on_batch``) and
after ``finish``. Where the run serves metrics (``wasmprobe agent``, ``wasmprobe run
--metrics-listen``) they appear as families of their own name with a ``plugin`` label;
elsewhere ``enabled()`` is false and updates go nowhere (declaring still works)::

    from wasmprobe import metrics

    # in init:
    self.calls = metrics.Counter("syscount_syscalls", "System calls", ["comm", "syscall"])
    self.lat = metrics.Histogram("openlat_open_seconds", "open() latency", ["comm"], [1e-6, 1e-5, 1e-4])
    # per batch (a batch's aggregated counts, not one update per event):
    self.calls.add(("cat", "0"), 3)
    self.lat.observe(("cat",), 0.000012)

Each metric keeps at most ``max_series`` label sets (0: 1000); the host puts the excess in an
overflow series whose label values are all ``__overflow__``, and counts it. A counter's name
does not end in ``_total`` (the exposition adds it). A declaration the host refuses raises
``componentize_py_types.Err`` with its reason (the plugin's ``init`` then fails with it).
"""

from wit_world.imports import metrics as _m

__all__ = ["Counter", "Gauge", "Histogram", "enabled", "flush"]

# Updates buffered before they are sent anyway (a plugin that updates per event).
MAX_PENDING = 4096

_pending = []
_enabled = None


def enabled():
    """Whether the run keeps metrics (asked once: it does not change during a run)."""
    global _enabled
    if _enabled is None:
        _enabled = _m.enabled()
    return _enabled


def _declare(name, help, kind, labels, buckets, max_series):  # noqa: A002 (Prometheus' word)
    labels = [str(lb) for lb in labels]
    return _m.declare(_m.Metric(name, help, kind, labels, [float(b) for b in buckets], int(max_series)))


def _push(metric, labels, op, value):
    if not enabled():
        return
    _pending.append(_m.MetricUpdate(metric, [str(v) for v in labels], op, float(value)))
    if len(_pending) >= MAX_PENDING:
        flush()


def flush():
    """Sends the buffered updates now (the SDK does it after every batch and after
    ``finish``). An update the host refused is logged."""
    global _pending
    if not _pending:
        return
    pending, _pending = _pending, []
    try:
        _m.update(pending)
    except Exception as e:  # noqa: BLE001 (componentize-py's Err: the host's reason)
        from wit_world.imports import output as _output
        from wit_world.imports import types as _t

        _output.log(_t.Level.WARN, f"metrics: {getattr(e, 'value', e)}")


class Counter:
    """Only goes up. Exposed as ``NAME_total``."""

    def __init__(self, name, help, labels=(), max_series=0):  # noqa: A002
        self._id = _declare(name, help, _m.MetricKind.COUNTER, labels, [], max_series)

    def add(self, labels, value=1):
        """Adds ``value`` (>= 0) to the series of these label values."""
        _push(self._id, labels, _m.Op.ADD, value)


class Gauge:
    """Any value."""

    def __init__(self, name, help, labels=(), max_series=0):  # noqa: A002
        self._id = _declare(name, help, _m.MetricKind.GAUGE, labels, [], max_series)

    def set(self, labels, value):
        """Sets the series of these label values to ``value``."""
        _push(self._id, labels, _m.Op.SET, value)

    def add(self, labels, value):
        """Adds ``value`` (any sign) to the series of these label values."""
        _push(self._id, labels, _m.Op.ADD, value)


class Histogram:
    """Observations counted in buckets (upper bounds, increasing; +Inf is implied). Exposed as
    ``NAME_bucket``, ``NAME_sum``, ``NAME_count``."""

    def __init__(self, name, help, labels, buckets, max_series=0):  # noqa: A002
        self._id = _declare(name, help, _m.MetricKind.HISTOGRAM, labels, buckets, max_series)

    def observe(self, labels, value):
        """Observes ``value`` in the series of these label values."""
        _push(self._id, labels, _m.Op.OBSERVE, value)

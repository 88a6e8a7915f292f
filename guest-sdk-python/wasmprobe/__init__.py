"""Write wasmprobe plugins in Python (built into a component with componentize-py).

The model is the Rust SDK's (guest-sdk/): a plugin is a class with ``init(args) -> Plan``,
``on_event(ev)``, ``on_lost(n)`` and ``finish()``; ``export(MyPlugin)`` makes it the
component's plugin::

    from wasmprobe import Plugin, Plan, export, print

    class ExecOpen(Plugin):
        def init(self, args):
            plan = Plan()
            self.open = plan.kprobe("open", "do_sys_openat2", "file=+0($arg2):ustring")
            plan.fields(self.open, ["file"])
            return plan

        def on_event(self, ev):
            print(f"{ev.pid}-{ev.comm}: open file='{ev.str('file')}'")

    WitWorld = export(ExecOpen)

Build: ``componentize-py -d wit -w plugin componentize -p guest-sdk-python -p . app -o app.wasm``.

What the SDK takes care of (the traps of componentize-py):

- componentize-py makes a new ``WitWorld`` object for every export call: ``export`` keeps
  the one plugin instance at module level, so ``self`` is the same object for the whole run.
- An exception in the plugin becomes the plugin's error (its type, message and the line it
  was raised at); the whole traceback is logged to stderr. ``raise PluginError("...")`` gives
  a plain message and no traceback.
- Batches are walked with ``struct`` over one ``memoryview``; a plugin that overrides
  ``on_batch(batch)`` gets whole columns instead (``batch.column(probe, "id")``,
  ``batch.pids(probe)``): for fixed-size projected fields these are strided views of the
  batch. ``batch.count(probe, "id", into)`` and ``batch.count_pids(probe, into)`` count them
  in C (the recommended path for counters): a column whose every value is the same (one
  process making every call of the batch) costs a few byte compares, no Python per event.
- The interpreter's objects at build time (the snapshot) are frozen out of the garbage
  collector (``gc.freeze()``): a collection never walks, and so never copies, the whole
  snapshot's heap (that walk was a fifth of a warm start).
"""

import gc as _gc
import struct as _struct
import sys as _sys
import traceback as _traceback
from collections import _count_elements  # the C loop behind Counter.update, without its ABC check

from componentize_py_types import Err as _Err
from wit_world.imports import kernel as _kernel
from wit_world.imports import output as _output
from wit_world.imports import run as _run
from wit_world.imports import types as _t

from . import metrics as _metrics  # its updates are sent after each batch and after finish

__all__ = [
    "Plugin", "Plan", "Args", "Event", "Batch", "PluginError", "export", "print", "emit",
    "log", "wants_records", "kernel_supports", "has_symbol", "lost_events", "comm_of",
    "Level", "ERROR", "WARN", "INFO", "DEBUG",
]

Level = _t.Level
ERROR, WARN, INFO, DEBUG = Level.ERROR, Level.WARN, Level.INFO, Level.DEBUG

HEADER_LEN = 24
_HEADER = _struct.Struct("<IIQiI")


class PluginError(Exception):
    """An error the plugin reports on purpose: its message stops the run, no traceback."""


# --- output and the host -----------------------------------------------------------------

def print(*parts, sep=" "):  # noqa: A001 (the SDK's print is the plugin's output)
    """Prints one line of the plugin's output through the host (the newline is added)."""
    _output.print(sep.join(str(p) for p in parts))


def _value(v):
    if isinstance(v, bool):
        return _t.Value_Boolean(v)
    if isinstance(v, int):
        return _t.Value_S64(v) if -(1 << 63) <= v < (1 << 63) else _t.Value_U64(v)
    if isinstance(v, float):
        return _t.Value_F64(v)
    return _t.Value_Str(str(v))


def _values(fields, kw):
    pairs = list(fields.items() if isinstance(fields, dict) else fields or ()) + list(kw.items())
    return [(str(k), _value(v)) for k, v in pairs]


def emit(fields=None, **kw):
    """Emits one record, its fields in order: ``emit(pid=1, comm="cat")`` or a list of pairs.
    bool, int, float and str map to the WIT's boolean, s64 (u64 above 2^63-1), f64, str."""
    _output.emit(_values(fields, kw))


def log(level, message):
    """Logs a message about the plugin itself to stderr (``log(WARN, "...")``)."""
    _output.log(level, str(message))


def wants_records():
    """Whether the user asked for records (``--json``): then ``emit`` rather than ``print``."""
    return _output.wants_records()


def kernel_supports(feature):
    """Whether the kernel can do ``feature``: "kprobe", "uprobe", "eprobe" or "tracepoint"."""
    return _kernel.supports(feature)


def has_symbol(name):
    """Whether the kernel has function ``name``."""
    return _kernel.has_symbol(name)


def lost_events():
    """Events the kernel lost so far in this run."""
    return _run.lost_events()


def comm_of(pid):
    """The command name of ``pid`` as the host knows it, or None (uncached)."""
    return _kernel.comm(pid)


# --- the plan ----------------------------------------------------------------------------

class Args:
    """The ``--arg key=value`` pairs, in order; the last value of a key wins."""

    def __init__(self, pairs):
        self.pairs = list(pairs)

    def get(self, key, default=None):
        """The last value given for ``key``, else ``default``."""
        for k, v in reversed(self.pairs):
            if k == key:
                return v
        return default

    def int(self, key, default=None):
        """The last value of ``key`` as an int; an error naming the key when it is not one."""
        v = self.get(key)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise PluginError(f"--arg {key}={v}: not an integer") from None


class Plan:
    """The probes a plugin asks for; each method returns the probe's id (its index)."""

    def __init__(self):
        self.probes = []

    def add(self, kind, name, target, fetchargs=""):
        """A probe of any kind (a ``ProbeKind``); the shortcuts below are clearer."""
        self.probes.append(_t.Probe(kind, name, target, fetchargs, None, None, None))
        return len(self.probes) - 1

    def kprobe(self, name, target, fetchargs=""):
        """A kprobe on kernel function ``target`` (``SYMBOL[+OFFSET]``)."""
        return self.add(_t.ProbeKind.KPROBE, name, target, fetchargs)

    def kretprobe(self, name, target, fetchargs=""):
        """A kretprobe on the return of kernel function ``target``."""
        return self.add(_t.ProbeKind.KRETPROBE, name, target, fetchargs)

    def uprobe(self, name, target, fetchargs=""):
        """A uprobe on ``PATH:SYMBOL`` or ``PATH:0xOFFSET`` (PATH may be ``libc``)."""
        return self.add(_t.ProbeKind.UPROBE, name, target, fetchargs)

    def uretprobe(self, name, target, fetchargs=""):
        """A uretprobe on the return of a user function."""
        return self.add(_t.ProbeKind.URETPROBE, name, target, fetchargs)

    def tracepoint(self, name, target):
        """An existing tracepoint, ``SYSTEM:EVENT``."""
        return self.add(_t.ProbeKind.TRACEPOINT, name, target, "")

    def eprobe(self, name, target, fetchargs=""):
        """An event probe on the existing event ``SYSTEM.EVENT``."""
        return self.add(_t.ProbeKind.EPROBE, name, target, fetchargs)

    def filter(self, probe, expr):
        """A kernel filter (ftrace syntax) on ``probe``."""
        self.probes[probe].filter = expr
        return self

    def maxactive(self, probe, n):
        """maxactive of kretprobe ``probe``."""
        self.probes[probe].maxactive = n
        return self

    def fields(self, probe, names):
        """Only these fields of ``probe``'s events are delivered (less to copy and walk);
        others read as 0 / ""."""
        self.probes[probe].fields = list(names)
        return self


# --- events ------------------------------------------------------------------------------

_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
              (4, False): "I", (4, True): "i", (8, False): "q", (8, True): "q"}
# 8-byte integers read as signed, like the Rust SDK's ``ev.i64`` (``%ax`` is a u64 holding an
# int); ``Event.uint`` reads them unsigned.
_K = _t.FieldKind


class _Field:
    """One field of a probe's layout, with its readers compiled once."""

    __slots__ = ("name", "offset", "size", "signed", "kind", "code", "unpack", "string")

    def __init__(self, f):
        self.name, self.offset, self.size, self.signed, self.kind = f.name, f.offset, f.size, f.signed, f.kind
        size = f.elem_size if f.kind == _K.ARRAY else f.size
        self.code = _INT_CODES.get((size, f.signed)) if f.kind in (_K.INTEGER, _K.OTHER, _K.ARRAY) else None
        self.unpack = _struct.Struct("<" + self.code).unpack_from if self.code else None
        self.string = f.kind not in (_K.INTEGER, _K.OTHER, _K.ARRAY)

    def bytes(self, buf, base):
        """The field's bytes (what a __data_loc/__rel_loc locates, else the field itself)."""
        at = base + self.offset
        if self.kind in (_K.DATA_LOC_STRING, _K.DATA_LOC_ARRAY, _K.REL_LOC_STRING, _K.REL_LOC_ARRAY):
            (loc,) = _struct.unpack_from("<I", buf, at)
            start = base + (loc & 0xFFFF)
            if self.kind in (_K.REL_LOC_STRING, _K.REL_LOC_ARRAY):
                start += self.offset + self.size
            return bytes(buf[start:start + (loc >> 16)])
        return bytes(buf[at:at + self.size])

    def int(self, buf, base):
        if self.unpack is None:
            return 0
        return self.unpack(buf, base + self.offset)[0]

    def str(self, buf, base):
        if not self.string:
            return str(self.int(buf, base))
        b = self.bytes(buf, base)
        end = b.find(0)
        return (b if end < 0 else b[:end]).decode("utf-8", "replace")


class _Probe:
    __slots__ = ("id", "name", "fields")

    def __init__(self, i, name):
        self.id, self.name, self.fields = i, name, {}


class Event:
    """One event. The SDK reuses one Event per probe: read what you need in ``on_event``
    (keep values, not the event). Missing fields read as 0 / ""."""

    __slots__ = ("probe", "probe_name", "pid", "ts", "cpu", "_buf", "_base", "_fields", "_comms")

    @property
    def comm(self):
        """The command name of ``pid`` (asked of the host once per pid and batch)."""
        return self._comms(self.pid)

    def str(self, name):
        """Field ``name`` as text: a string up to its NUL (lossily decoded), an integer in
        decimal; "" when absent."""
        f = self._fields.get(name)
        return f.str(self._buf, self._base) if f else ""

    def int(self, name):
        """Integer field ``name`` (signed or not as the format says); 0 when absent."""
        f = self._fields.get(name)
        return f.int(self._buf, self._base) if f else 0

    def uint(self, name):
        """Integer field ``name`` as unsigned 64-bit (what ``int`` gives, modulo 2^64)."""
        return self.int(name) & 0xFFFFFFFFFFFFFFFF

    def bytes(self, name):
        """The bytes of field ``name``, or None."""
        f = self._fields.get(name)
        return f.bytes(self._buf, self._base) if f else None

    @property
    def payload(self):
        """The raw payload (the kernel's record, or the projected fields)."""
        (plen,) = _struct.unpack_from("<I", self._buf, self._base - HEADER_LEN + 4)
        return bytes(self._buf[self._base:self._base + plen])


class Batch:
    """One batch of events, for plugins that override ``Plugin.on_batch`` (columnar access).

    ``column(probe, name)``, ``pids(probe)``, ``ts(probe)`` and ``cpus(probe)`` give the values
    of one probe's events in order. When every record of the batch belongs to one probe and
    has the same size (a tracepoint with fixed-size ``fields``), each is a strided
    ``memoryview`` of the batch itself: no per-event Python at all. Otherwise they are lists
    built by one walk of the batch. Valid only during the call."""

    def __init__(self, buf, probes, comms):
        self._buf = buf
        self._probes = probes
        self._comms = comms
        self._bytes = None
        self._uniform = self._find_uniform()
        self._walked = None

    def _find_uniform(self):
        buf = self._buf
        n = len(buf)
        if n < HEADER_LEN or n % 8:
            return None
        idx, plen, _, _, _ = _HEADER.unpack_from(buf, 0)
        stride = (HEADER_LEN + plen + 7) & ~7
        if n % stride or idx >= len(self._probes):
            return None
        words = buf.cast("I")
        count = n // stride
        step = stride // 4
        if bytes(words[0::step]) != _struct.pack("<I", idx) * count:
            return None
        if bytes(words[1::step]) != _struct.pack("<I", plen) * count:
            return None
        return idx, stride, count

    def __len__(self):
        if self._uniform:
            return self._uniform[2]
        return sum(len(cols["pid"]) for cols in self._walk().values())

    def comm(self, pid):
        """The command name of ``pid`` (cached for the batch)."""
        return self._comms(pid)

    def _walk(self):
        if self._walked is None:
            cols = {}
            for ev in _events(self._buf, self._probes, self._comms):
                c = cols.get(ev.probe)
                if c is None:
                    c = cols[ev.probe] = {"pid": [], "ts": [], "cpu": [], "events": []}
                c["pid"].append(ev.pid)
                c["ts"].append(ev.ts)
                c["cpu"].append(ev.cpu)
                c["events"].append((ev._base, ev.pid))
            self._walked = cols
        return self._walked

    def _header(self, probe, code, index, name):
        u = self._uniform
        if u:
            if u[0] != probe:
                return []
            size = _struct.calcsize(code)
            return self._buf.cast(code)[index // size::u[1] // size]
        return list(self._walk().get(probe, {}).get(name, []))

    def pids(self, probe):
        """The pid of each of ``probe``'s events."""
        return self._header(probe, "i", 16, "pid")

    def ts(self, probe):
        """The timestamp of each of ``probe``'s events."""
        return self._header(probe, "Q", 8, "ts")

    def cpus(self, probe):
        """The CPU of each of ``probe``'s events."""
        return self._header(probe, "I", 20, "cpu")

    def column(self, probe, name):
        """Field ``name`` of each of ``probe``'s events (ints, or str for string fields)."""
        f = self._probes[probe].fields.get(name)
        u = self._uniform
        if u and f is not None and f.code and not f.kind == _K.ARRAY:
            if u[0] != probe:
                return []
            at = HEADER_LEN + f.offset
            if at % f.size == 0 and u[1] % f.size == 0:
                return self._buf.cast(f.code)[at // f.size::u[1] // f.size]
        if u:
            if u[0] != probe:
                return []
            bases = range(HEADER_LEN, len(self._buf), u[1])
        else:
            bases = [b for b, _ in self._walk().get(probe, {}).get("events", [])]
        if f is None:
            return [0] * len(bases)
        read = f.str if f.string else f.int
        return [read(self._buf, b) for b in bases]

    def events(self):
        """Every event of the batch, in order (as ``on_event`` gets them)."""
        return _events(self._buf, self._probes, self._comms)

    def _same(self, probe, at, size, signed):
        """The one value of the ``size``-byte integer at ``at`` in every record, if the batch is
        uniform (one probe, one record size) and every record holds the same value there;
        else None. Compares byte lanes (``bytes`` sliced with a step) with their first byte
        repeated: C loops over bytes, no Python per event."""
        u = self._uniform
        if not u or u[0] != probe:
            return None
        if self._bytes is None:
            self._bytes = bytes(self._buf)
        b, stride, n = self._bytes, u[1], u[2]
        end = at + stride * (n - 1) + 1
        value = bytearray(size)
        for j in range(size):
            lane = b[at + j:end + j:stride]
            if lane != lane[:1] * n:
                return None
            value[j] = lane[0]
        return int.from_bytes(value, "little", signed=signed)

    def count(self, probe, name, into=None):
        """Counts the values of field ``name`` of ``probe``'s events: adds each value's count
        to ``into`` (a dict or ``Counter``; a new dict when None) and returns it.

        For a fixed-size integer field of a uniform batch (see the class) this runs in C
        loops over bytes: a field with one value in the whole batch costs a few compares; a
        field with few distinct values (syscall ids, pids, CPUs, small codes: at most 24,
        counting those of their upper bytes) is counted one distinct value at a time
        (``bytes.translate`` deletes it, the length tells how many there were). Otherwise, per
        value (``Counter``'s C loop)."""
        into = {} if into is None else into
        f = self._probes[probe].fields.get(name)
        if f is not None and f.code and f.kind != _K.ARRAY and self._uniform and self._uniform[0] == probe:
            at = HEADER_LEN + f.offset
            v = self._same(probe, at, f.size, f.code.islower())
            if v is not None:
                into[v] = into.get(v, 0) + self._uniform[2]
                return into
            if _count_small(self._bytes, at, self._uniform[1], self._uniform[2], f.size, f.code.islower(), into):
                return into
        _count_elements(into, self.column(probe, name))
        return into

    def count_pids(self, probe, into=None):
        """Counts ``probe``'s events per pid, as ``count`` does a field."""
        into = {} if into is None else into
        v = self._same(probe, 16, 4, True)
        if v is not None:
            into[v] = into.get(v, 0) + self._uniform[2]
            return into
        u = self._uniform
        if u and u[0] == probe and _count_small(self._bytes, 16, u[1], u[2], 4, True, into):
            return into
        _count_elements(into, self.pids(probe))
        return into

_ZERO_LANES = {}
_MASKS = {}


def _mask_table(h):
    t = _MASKS.get(h)
    if t is None:
        t = _MASKS[h] = bytes(0xFF if i == h else 0 for i in range(256))
    return t


def _each_byte(r, into, base, extra_zeros, budget):
    """Counts each byte value of ``r`` into ``into`` (key ``base + value``), one distinct value
    at a time: ``translate`` deletes it and the length tells how many there were. Zeros count
    ``extra_zeros`` less. Returns the budget left (one per distinct value), -1 if it ran out."""
    while r:
        if budget == 0:
            return -1
        budget -= 1
        v = r[0]
        rest = r.translate(None, bytes((v,)))
        c = len(r) - len(rest)
        if v == 0:
            c -= extra_zeros
        if c:
            into[base + v] = into.get(base + v, 0) + c
        r = rest
    return budget


def _split(lanes, mask, members, prefix, out, n, budget):
    """Counts the values of ``lanes`` (byte lanes, lowest first) at the positions that ``mask``
    selects (a big integer with 0xFF bytes there; None: all ``n``, ``members`` of them) into
    ``out``, under keys whose upper bytes are ``prefix``: the top lane's distinct values, then
    for each the lanes below it at its positions. Spends ``budget[0]``, one per distinct value
    at each level; False when it ran out."""
    top = lanes[-1]
    if mask is not None:
        top = (int.from_bytes(top, "little") & mask).to_bytes(n, "little")
    key = prefix << 8
    found = out if len(lanes) == 1 else {}
    left = _each_byte(top, found, key if found is out else 0, n - members, budget[0])
    if left < 0:
        return False
    budget[0] = left
    if found is out:
        return True
    for v, nv in found.items():
        m = int.from_bytes(lanes[-1].translate(_mask_table(v)), "little")
        if mask is not None:
            m &= mask
        if not _split(lanes[:-1], m, nv, key | v, out, n, budget):
            return False
    return True


def _count_small(b, at, stride, n, size, signed, into, budget=24):
    """Adds to ``into`` the counts of the little-endian ``size``-byte integers at
    ``b[at + i*stride]`` (i < n) if they have at most ``budget`` distinct values (counting
    those of their upper bytes too) and, when ``signed``, none is negative; else adds nothing
    and returns False. C loops over byte lanes only: a lane is ``b`` sliced with a step; the
    lanes that are zero throughout are left out; the values under one value of the upper
    bytes are picked out of the lower lanes by an AND of big integers with a mask that
    ``translate`` makes."""
    zeros = _ZERO_LANES.get(n)
    if zeros is None:
        zeros = _ZERO_LANES[n] = bytes(n)
    end = at + stride * (n - 1) + 1
    lanes = [b[at + j:end + j:stride] for j in range(size)]
    if signed and lanes[-1] != zeros and max(lanes[-1]) >= 0x80:
        return False
    while len(lanes) > 1 and lanes[-1] == zeros:
        lanes.pop()
    out = {}
    if not _split(lanes, None, n, 0, out, n, [budget]):
        return False
    for k, c in out.items():
        into[k] = into.get(k, 0) + c
    return True


def _events(buf, probes, comms):
    n = len(buf)
    off = 0
    unpack = _HEADER.unpack_from
    evs = [Event() for _ in probes]
    for p, ev in zip(probes, evs):
        ev.probe, ev.probe_name, ev._buf, ev._fields, ev._comms = p.id, p.name, buf, p.fields, comms
    while off + HEADER_LEN <= n:
        idx, plen, ts, pid, cpu = unpack(buf, off)
        end = off + HEADER_LEN + plen
        if end > n:
            raise PluginError(f"batch truncated at offset {off}")
        if idx >= len(evs):
            raise PluginError(f"batch names probe {idx} but the plan has {len(evs)}")
        ev = evs[idx]
        ev.pid, ev.ts, ev.cpu, ev._base = pid, ts, cpu, off + HEADER_LEN
        yield ev
        off = (end + 7) & ~7
    if off < n:
        raise PluginError(f"batch truncated at offset {off}")


# --- the plugin and its export -----------------------------------------------------------

class Plugin:
    """Subclass it: ``init`` returns a ``Plan``; then ``on_event`` per event (or override
    ``on_batch`` for whole columns); ``on_lost`` when the kernel lost events; ``finish``."""

    def init(self, args):
        """Reads ``args`` (an ``Args``) and returns the ``Plan``."""
        raise PluginError("the plugin has no init")

    def on_event(self, ev):
        """Called once per event, in timestamp order within a batch."""

    def on_lost(self, count):
        """Called before a batch's events when the kernel lost ``count`` events."""

    def on_batch(self, batch):
        """Called once per batch; by default calls ``on_event`` for each event."""
        on_event = self.on_event
        for ev in batch.events():
            on_event(ev)

    def finish(self):
        """Called once at the end of the run: print tables here."""


def _error(call, e):
    """The plugin's error for exception ``e``: one line naming its type, message and where
    it was raised; the full traceback goes to the log."""
    if isinstance(e, PluginError):
        return _Err(str(e))
    tb = _traceback.extract_tb(e.__traceback__)
    where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    text = "".join(_traceback.format_exception(type(e), e, e.__traceback__)).rstrip()
    try:
        _output.log(Level.ERROR, f"{call}: {text}")
    except Exception:  # noqa: BLE001 (the error below is what matters)
        pass
    msg = str(e)
    return _Err(f"{type(e).__name__}{': ' + msg if msg else ''}{where}".replace("\n", " "))


class _State:
    """Module-level: componentize-py makes a new WitWorld per call."""

    plugin = None
    probes = []
    layouts = False
    comms = {}


def _comm(pid):
    c = _State.comms.get(pid)
    if c is None:
        c = _kernel.comm(pid) or "<...>"
        _State.comms[pid] = c
    return c


def _load_layouts():
    for layout in _run.layouts():
        if layout.probe_index < len(_State.probes):
            _State.probes[layout.probe_index].fields = {f.name: _Field(f) for f in layout.fields}
    _State.layouts = True


def export(cls):
    """Makes ``cls`` (a ``Plugin`` subclass, built with no arguments) the component's
    plugin: ``WitWorld = export(MyPlugin)`` in the module componentize-py builds."""

    class WitWorld:
        def init(self, args):
            try:
                plugin = cls()
                plan = plugin.init(Args(args))
                if not isinstance(plan, Plan):
                    raise PluginError(f"init returned {type(plan).__name__}, not a Plan")
            except BaseException as e:  # noqa: BLE001
                raise _error("init", e) from None
            _State.plugin = plugin
            _State.probes = [_Probe(i, p.name) for i, p in enumerate(plan.probes)]
            return _t.Plan(plan.probes)

        def on_batch(self, batch, lost):
            plugin = _State.plugin
            if plugin is None:
                raise _Err("on-batch called before init")
            try:
                if not _State.layouts:
                    _load_layouts()
                _State.comms = {}
                if lost:
                    plugin.on_lost(lost)
                plugin.on_batch(Batch(memoryview(batch), _State.probes, _comm))
                _metrics.flush()
            except BaseException as e:  # noqa: BLE001
                raise _error("on-batch", e) from None

        def finish(self):
            plugin = _State.plugin
            if plugin is None:
                raise _Err("finish called before init")
            try:
                plugin.finish()
                _metrics.flush()
                _sys.stdout.flush()
            except BaseException as e:  # noqa: BLE001
                raise _error("finish", e) from None

    WitWorld.__name__ = WitWorld.__qualname__ = "WitWorld"
    # Called at module level while componentize-py snapshots the interpreter: everything alive
    # now (the interpreter, the SDK, the plugin's module) is never collected, so a collection
    # during the run walks only what the run allocated, not (and so does not copy) the whole
    # snapshot's memory.
    _gc.collect()
    _gc.freeze()
    return WitWorld

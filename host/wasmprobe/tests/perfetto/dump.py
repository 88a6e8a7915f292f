#!/usr/bin/env python3
"""Reads a Perfetto trace with Perfetto's own protobuf definitions (the Python bindings the
`perfetto` package ships, perfetto.protos.perfetto.trace.perfetto_trace_pb2) and prints what
tests/perfetto.rs checks, as one JSON object:

  events:  every ftrace event in file order: cpu, ts, pid, the event (the generic event's
           name, or the typed message's field name in FtraceEvent), typed or not, and its
           fields as [name, "str"|"int"|"uint", value] (typed: the fields set, by name)
  bundles: [cpu, lost_events, number of events] per FtraceEventBundle, in file order
  threads, processes: the ProcessTree entries
  system:  the SystemInfo
  tracks:  TrackDescriptors; marks: TrackEvents (ts, type, track, name, args, value)

Usage: dump.py TRACE.pftrace  (exit status 2 if the perfetto package is missing)
"""
import json
import sys

try:
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb
    from google.protobuf.descriptor import FieldDescriptor as FD
except ImportError as e:  # pragma: no cover
    print(f"no perfetto package: {e}", file=sys.stderr)
    sys.exit(2)

KIND = {FD.TYPE_STRING: "str", FD.TYPE_INT32: "int", FD.TYPE_INT64: "int", FD.TYPE_SINT32: "int",
        FD.TYPE_SINT64: "int", FD.TYPE_UINT32: "uint", FD.TYPE_UINT64: "uint", FD.TYPE_BOOL: "uint"}


def generic_fields(g):
    out = []
    for f in g.field:
        which = f.WhichOneof("value")
        kind = {"str_value": "str", "int_value": "int", "uint_value": "uint"}[which]
        out.append([f.name, kind, getattr(f, which)])
    return out


def typed_fields(msg):
    return [[fd.name, KIND.get(fd.type, "other"), v] for fd, v in msg.ListFields()]


def annotation(a):
    which = a.WhichOneof("value")
    return [a.name, which, getattr(a, which) if which else None]


def main():
    trace = pb.Trace()
    with open(sys.argv[1], "rb") as f:
        trace.ParseFromString(f.read())
    out = {"events": [], "bundles": [], "threads": [], "processes": [], "system": None,
           "tracks": [], "marks": [], "packets": len(trace.packet)}
    for p in trace.packet:
        data = p.WhichOneof("data")
        if data == "ftrace_events":
            b = p.ftrace_events
            out["bundles"].append([b.cpu, b.lost_events, len(b.event)])
            for e in b.event:
                which = e.WhichOneof("event")
                if which == "generic":
                    name, typed, fields = e.generic.event_name, False, generic_fields(e.generic)
                else:
                    name, typed, fields = which, True, typed_fields(getattr(e, which))
                out["events"].append({"cpu": b.cpu, "ts": e.timestamp, "pid": e.pid, "flags": e.common_flags,
                                      "event": name, "typed": typed, "fields": fields})
        elif data == "process_tree":
            for t in p.process_tree.threads:
                out["threads"].append({"tid": t.tid, "name": t.name, "tgid": t.tgid if t.HasField("tgid") else None})
            for pr in p.process_tree.processes:
                out["processes"].append({"pid": pr.pid, "cmdline": list(pr.cmdline)})
        elif data == "system_info":
            u = p.system_info.utsname
            out["system"] = {"sysname": u.sysname, "release": u.release, "machine": u.machine,
                             "cpus": p.system_info.num_cpus, "page_size": p.system_info.page_size}
        elif data == "track_descriptor":
            d = p.track_descriptor
            t = {"uuid": d.uuid, "parent": d.parent_uuid if d.HasField("parent_uuid") else None,
                 "name": d.name if d.HasField("name") else None, "counter": d.HasField("counter"),
                 "ts": p.timestamp if p.HasField("timestamp") else None}
            if d.HasField("thread"):
                t["thread"] = {"pid": d.thread.pid, "tid": d.thread.tid, "name": d.thread.thread_name}
            if d.HasField("process"):
                t["process"] = {"pid": d.process.pid, "name": d.process.process_name}
            out["tracks"].append(t)
        elif data == "track_event":
            e = p.track_event
            out["marks"].append({
                "ts": p.timestamp, "seq": p.trusted_packet_sequence_id, "type": pb.TrackEvent.Type.Name(e.type),
                "track": e.track_uuid, "name": e.name if e.HasField("name") else None,
                "args": [annotation(a) for a in e.debug_annotations],
                "value": e.double_counter_value if e.HasField("double_counter_value") else None})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

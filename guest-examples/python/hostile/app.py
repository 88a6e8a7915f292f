"""A hostile Python plugin for the sandbox tests: ``--arg attack=NAME`` picks what it tries in
``init`` (files, environment, network, an endless loop, a memory bomb). Every attack must be
contained: the host gives it no files, no environment, no network, and stops it at its budget
and its memory cap. ``init`` reports what it saw, so the test can tell "refused" from "got".
"""

from wasmprobe import Plan, Plugin, PluginError, export, print


def shadow():
    with open("/etc/shadow") as f:
        return "read /etc/shadow: " + f.read(20)


def environ():
    import os
    if not os.environ:
        raise OSError("the environment is empty")
    return f"environ: {dict(os.environ)}"


def network():
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", 22))
    return "connected"


def loop():
    n = 0
    while True:
        n += 1


def memory():
    hog = []
    while True:
        hog.append(bytearray(1 << 20))


ATTACKS = {"shadow": shadow, "environ": environ, "network": network, "loop": loop, "memory": memory}


class Hostile(Plugin):
    def init(self, args):
        attack = ATTACKS[args.get("attack")]
        try:
            got = attack()
        except Exception as e:  # the sandbox said no: say how
            raise PluginError(f"refused: {type(e).__name__}: {e}") from None
        print(got)
        raise PluginError(f"NOT CONTAINED: {got}")


WitWorld = export(Hostile)

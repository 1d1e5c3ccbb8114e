"""The code that runs inside the sandbox: a warm "zygote" per worker slot and language, stdlib only.

It is started as ``/usr/bin/python3 -I -S .../oc_synth/sandbox/jail`` (this directory as a script; siblings are
imported as top-level modules, so nothing here may import ``oc_synth``). ``protocol`` is also imported by the host
side as ``oc_synth.sandbox.jail.protocol``.

- ``__main__``: the zygote: reads its setup message, enters the jail (``isolation.enter_view``), then serves one
  program at a time.
- ``isolation``: namespaces, the read-only root view, privilege drop and rlimits (ctypes over libc; Python 3.11 has
  no ``os.unshare``).
- ``supervisor``: per program: a new PID namespace whose init runs the steps with timeouts and kills leftovers.
- ``pyexec``: runs a Python program (code, then instrumented tests) inside the forked interpreter.
- ``protocol``: length-prefixed JSON frames between the host and the zygote.
"""

"""The ``bulkinvoke`` command, and the only place typer and rich live: one module per command
group (``submit``, ``run`` for resume/collect/retry, ``report`` with status, ``export``,
``emulator``), the options they share (``options``), the one error ladder (``errors``), the
terminal renderings (``render``) and the progress display (``progress``). Each command parses its
options, calls one library function and renders what it returns. Imports anything below it.
"""

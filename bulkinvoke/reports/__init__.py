"""What a run holds, for people and scripts: the report model built from the ledger alone
(``model``), the end-of-run summary and status as dicts (``summary``), and their Markdown and HTML
forms (``markdown``, ``html``, sharing ``formatting``). The terminal's rich forms live in
``bulkinvoke.cli.render``. Imports ``run`` (for result types), ``scale``, ``ledger`` and the base
modules.
"""

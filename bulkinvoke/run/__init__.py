"""One run, end to end: what a run is and the refusals before anything is sent (``definition``),
the work of a session (``work``), in-doubt and late results settled first (``in_doubt``), the
submit-and-collect loop (``engine``, with ``intents``, ``recorder``, ``stop`` and ``messages``),
the session around it (``session``) and the public entry points ``submit``, ``resume``,
``collect``, ``retry`` and ``dry_run`` (``runner``); ``--local``'s embedded endpoint (``local``).
Imports every layer below it; nothing below imports it.
"""

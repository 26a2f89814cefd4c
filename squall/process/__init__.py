"""Everything about OS processes: bind the sockets once, run one serving process (``single``) or a
supervisor (``supervisor``) that spawns, watches, recycles and reloads workers (``worker``, started
through ``spawn``), plus systemd socket activation and notification, the PID file and malloc tuning.

The supervisor side (``supervisor``, ``spawn``, ``listeners``, ``systemd``, ``pidfile``, ``malloc``)
never imports asyncio or the app; ``worker`` and ``single`` run the event loop.
"""

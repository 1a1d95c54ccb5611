"""The HTTP side of the engine: REST ``/api/v1``, WebSocket events, ``/metrics``, the
wallboard. Build it with :func:`api.app.create_app`; serve it with
:func:`api.server.make_server` on the engine's loop (``acd serve``)."""

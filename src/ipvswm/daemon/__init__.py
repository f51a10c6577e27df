"""The daemon (SPEC §9): one event queue, one owner of the engine, start-up, reload and shutdown.

Empty on purpose: the console imports `ipvswm.daemon.requests` (the queue's request types and
`ReloadOutcome`) and must not pull the running daemon in; `ipvswm.daemon.daemon.Daemon` is the
daemon itself (docs/architecture.md walks through the modules).
"""

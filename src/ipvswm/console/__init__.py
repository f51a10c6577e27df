"""The management console: grammar, servers and client (SPEC §7)."""

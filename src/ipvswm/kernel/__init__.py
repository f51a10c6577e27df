"""The IPVS table: model, reconciler and backends (SPEC §5)."""

"""ipvs-weightman: health-checks IPVS real servers and sets their weights."""

__version__ = "0.1.0"

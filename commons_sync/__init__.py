"""commons-sync: co-funding of shared resources where a network already talks and writes."""

__version__ = "0.1.0"

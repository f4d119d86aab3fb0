"""The embedded backend: one SQLite file plus numpy vector snapshots, in one data directory."""

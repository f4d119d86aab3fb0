"""Ingestion: files → documents → clean → chunks → vectors → index, incrementally and resumably."""

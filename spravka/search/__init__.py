"""Hybrid retrieval: lexical (BM25 over lemmas) + dense (chunk and title vectors), fused."""

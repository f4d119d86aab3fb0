"""The Milvus backend: the :class:`~spravka.store.base.SearchIndex` in Milvus, everything else
(documents, sources, embedding cache, events, jobs) in the embedded SQLite store of the data
directory.

Needs the ``milvus`` extra (pymilvus; milvus-lite for a local file). Select it with
``SPRAVKA_STORE__URL=milvus://host:19530`` (a server) or ``milvus:///path/to/file.db`` /
``milvus://`` (Milvus Lite, a file in the data directory).
"""

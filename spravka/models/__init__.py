"""Model ports (Embedder, Reranker, ChatModel, Ocr) and their adapters."""

"""Storage ports (DocumentStore, SearchIndex) and their backends."""

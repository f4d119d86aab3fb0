"""Evaluation on golden sets: retrieval now, answers and operations as they arrive."""

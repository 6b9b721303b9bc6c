"""Retrieval: vector store, embedder, hybrid retriever, answer composer, grounding check."""

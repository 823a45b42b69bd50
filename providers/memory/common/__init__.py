"""What every memory provider shares: ingestion, chunking, BM25, query parameters, the engine."""

"""Llama model glue: the Llama 3 chat format (via llama-models) and the tiny test model."""

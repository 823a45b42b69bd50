"""One module per group of /alpha routes, each written once for both clients (see calls.py)."""

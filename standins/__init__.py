"""Stand-ins at the network boundary and the thread that serves them, shared by the tests and the
benchmark (both may import this package; the product may not: tools/layers.py checks it)."""

"""`make bench`: Jobgate's costs and speed, measured on the embedded AWS (see bench/run.py)."""

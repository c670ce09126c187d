"""The benchmark suite's smoke test, at tiny sizes."""

"""The side-by-side benchmark: dispatcher, a bare aiohttp loop and a naive script, on one machine.

Run ``python -m benchmarks`` (or ``make bench``); ``python -m benchmarks --help`` lists the sizes.
"""

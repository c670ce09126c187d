"""Summaries, exports and the HTML report."""

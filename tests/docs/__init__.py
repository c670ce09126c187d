"""Every example of the README and the docs site, run."""

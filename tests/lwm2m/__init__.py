"""The LwM2M registry and the checks it makes possible."""

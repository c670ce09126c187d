"""Settings: the config file, its checks, flags and the api-key."""

"""The ledger: the contract of every store, the SQLite ledger, the recorder."""

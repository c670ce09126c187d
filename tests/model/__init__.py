"""The command value: its typed write values, the body they make, its key and fingerprint."""

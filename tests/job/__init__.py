"""Job files: reading, field rules, operations, writes, plans, the shipped examples."""

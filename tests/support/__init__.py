"""What tests share: fleets, jobs, ledgers, a scripted OneNET, the command line, docs blocks."""

"""What tests share: fleets, job files, ledgers, a scripted OneNET, the command line as a process, the docs' blocks."""

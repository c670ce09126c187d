"""The OneNET emulator: routes, devices, operations, products."""

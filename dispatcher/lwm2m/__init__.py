"""What LwM2M ids mean: the OMA LwM2M Object Registry's objects and resources, as a table.

The table (registry.json.gz, built by scripts/build_lwm2m_registry.py from the registry's DDF
files; their licence notices in LICENSES.txt) is read once, on first use. An id that is not in
it is not an error: vendors and device makers use private ranges freely.

May import: errors. Nothing else of the package.
"""

from dispatcher.lwm2m.registry import (
    LwM2MObject,
    Resource,
    describe,
    find,
    lookup,
    objects,
    resource,
)

__all__ = ["LwM2MObject", "Resource", "describe", "find", "lookup", "objects", "resource"]

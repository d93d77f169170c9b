"""occbench's built-in plugins (methods, imputers, protocols).

Installed under the import name ``occbench_plugins`` and loaded through the ``occbench`` entry-point
group exactly like a third-party plugin; the core package never imports this one.
"""

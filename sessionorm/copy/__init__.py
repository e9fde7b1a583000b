"""`sessionorm copy`: what it carries (`tables`), how it flows (`transfer`), what it proves
(`checks`, `checksums`). Each engine's bulk load is its backend's (`backends/*_copy.py`).

`sessionorm.copy`, the attribute, is the command function (`commands.copy`), which the
package's `__init__` binds after importing this package.
"""

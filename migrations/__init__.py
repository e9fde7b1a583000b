"""Numbered migration scripts, shipped inside the package as `sessionorm.migrations`."""

"""What readers see: one style for every figure and table (`style`), the figures (`plot`) and the report."""

"""HTTP routes: v1 (the compatibility contract) and, later, v2."""

"""Artifacts built from pinned source: recipes, go build, provenance, the mirror tree."""

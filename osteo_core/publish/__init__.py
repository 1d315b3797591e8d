"""The output folder: run folders, the atomic switch, the manifest and the DuckDB catalog."""

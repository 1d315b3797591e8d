"""What users read from a published run: explain, report, research extract, gap list."""

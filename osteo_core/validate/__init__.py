"""Row checks: text to typed values, identical duplicates set aside, failing rows quarantined."""

"""The synthetic registry behind ``osteo demo`` and the tests (no real patient data)."""

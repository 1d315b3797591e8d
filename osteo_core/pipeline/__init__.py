"""One screen as stages over paths (request, STAGES, partitions), with or without Prefect."""

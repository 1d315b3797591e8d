"""Decisions per exam: WHO classification, the rule set's eligibility and drug choice, next DXA."""

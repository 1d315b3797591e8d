"""Quality measures (HEDIS OMW, MIPS 418, MIPS 039) over the population roster: versioned specs, members."""

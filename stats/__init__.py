"""Pure statistics for every app: the analysis models, power and sample size, sample-ratio
mismatch, psychometrics and careless-responding indices.

No Django and no app imports (a contract in ``pyproject.toml``): inputs are arrays, data frames or
sufficient statistics; outputs are frozen dataclasses."""

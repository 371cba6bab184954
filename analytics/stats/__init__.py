"""Pure statistics: no Django imports; inputs are arrays or data frames, outputs are frozen
dataclasses."""

"""The flourishing dimensions results are reported in. Flourishing is multidimensional, so every
result is reported per dimension, and a composite only with a community's own weights.

Instruments map their scores onto these; communities weight them in their profiles; plans name
them as outcomes. The set follows the domains of the Global Flourishing Study's Flourish measure,
plus the assistant-specific one this platform exists to watch: autonomy and reliance on AI.
"""

from typing import Literal

FLOURISHING_DIMENSIONS: dict[str, str] = {
    "life_satisfaction": "happiness and life satisfaction",
    "mental_wellbeing": "mental wellbeing",
    "physical_health": "physical health",
    "meaning": "meaning and purpose",
    "character": "character and virtue",
    "relationships": "close social relationships",
    "financial_stability": "financial and material stability",
    "autonomy": "autonomy and reliance on AI",
}

# The names above as a type, for the typed documents that name a dimension (trials.plan,
# surveys.instrument): their JSON Schemas list the valid names.
Dimension = Literal[tuple(FLOURISHING_DIMENSIONS)]  # type: ignore[valid-type]

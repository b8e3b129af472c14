"""Why a cell takes its time: the probes, the ops counted, the prices, and ``WhyObserver``,
which runs them around a unit's measurement (in its own phase after the timed rounds)."""

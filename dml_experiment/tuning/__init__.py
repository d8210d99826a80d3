"""Tuning: the search space of each method (`space`, no Ray) and its search on Ray Tune (`search`)."""

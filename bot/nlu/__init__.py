"""Rasa NLU components of CareLoop's own (they run in the Rasa environment)."""

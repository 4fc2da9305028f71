"""Text analysis with spaCy: what a customer's free text says beyond its intent."""

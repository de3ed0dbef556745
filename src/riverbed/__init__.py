"""riverbed: event-driven systems in Python."""

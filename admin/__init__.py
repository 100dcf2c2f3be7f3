"""Admin API (and later its web console): rounds, shortlist import, status, results."""

"""Public voting service: shortlisted profiles, ballots in Redis, the record in Postgres."""

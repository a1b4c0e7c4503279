"""make run's launcher: the local stack (Redis, workers, beat, Flower, bot or sandbox) under one
supervisor."""

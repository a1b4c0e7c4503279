"""Market data: providers by spec (demo, csv) and the indicators computed from candles."""

"""Market data: providers by spec (demo, csv, ccxt with its shared candle cache) and the
indicators computed from candles."""

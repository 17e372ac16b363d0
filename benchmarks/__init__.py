"""Speed benchmarks: whole epochs against the d2l loop (`benchmarks.epoch`), and a schedule sweep end to end
(`benchmarks.sweep`). See benchmarks/README.md for the figures and the commands that produced them."""
